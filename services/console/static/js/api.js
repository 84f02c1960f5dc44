// The console's JSON API: every state-changing request carries the session's CSRF token in
// X-CSRF-Token; a 401 tells the page to show the login form.

let csrfToken = "";
const signals = new EventTarget();

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || "";
    this.service = (body && body.service) || "";
  }

  describe() {
    return this.service ? `${this.service}: ${this.message}` : this.message;
  }
}

export function setCsrf(token) {
  csrfToken = token || "";
}

export function onUnauthenticated(listener) {
  signals.addEventListener("unauthenticated", listener);
}

async function answer(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    // The console's own 401 (no session) sends the page to the login form; a service's 401
    // (its key set not loaded yet, say) is only reported.
    if (response.status === 401 && !(body && body.service)) {
      signals.dispatchEvent(new Event("unauthenticated"));
    }
    throw new ApiError(response.status, body);
  }
  return body;
}

export function query(params) {
  const kept = Object.entries(params).filter(([, value]) => value !== "" && value != null);
  return new URLSearchParams(kept.map(([key, value]) => [key, String(value)])).toString();
}

export async function get(path, params = {}) {
  const search = query(params);
  const response = await fetch(search ? `${path}?${search}` : path, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  return answer(response);
}

export async function post(path, body = {}) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      Accept: "application/json",
      "Content-Type": "application/json",
      "X-CSRF-Token": csrfToken,
    },
    body: JSON.stringify(body),
  });
  return answer(response);
}
