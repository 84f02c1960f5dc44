// The tab's one live stream (/api/events): readings and alert events as they happen. The
// browser reconnects by itself after a network break; a refusal (401, 429) closes it.

let source = null;

export function disconnect() {
  if (source) source.close();
  source = null;
}

export function connect(state, on) {
  disconnect();
  const params = new URLSearchParams();
  if (state.field) params.set("field", state.field);
  if (state.site) params.set("site", state.site);
  params.set("since", String(state.revision || 0));
  const opened = new EventSource(`api/events?${params}`);
  source = opened;
  let greeted = false;
  const parse = (handler) => (message) => {
    if (source === opened) handler(JSON.parse(message.data));
  };
  opened.addEventListener(
    "hello",
    parse((hello) => {
      on.hello(hello, greeted);
      greeted = true;
    }),
  );
  opened.addEventListener("readings", parse(on.readings));
  opened.addEventListener("alert", parse(on.alert));
  opened.addEventListener(
    "resync",
    parse((body) => on.resync(body.what)),
  );
  opened.addEventListener("status", parse(on.status));
  opened.addEventListener(
    "end",
    parse((body) => {
      opened.close();
      on.end(body.reason);
    }),
  );
  opened.addEventListener("error", () => {
    if (source !== opened) return;
    if (opened.readyState === EventSource.CLOSED) on.closed();
    else on.reconnecting();
  });
}
