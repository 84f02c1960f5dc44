// Labels in Vietnamese and English: one dictionary file per language under i18n/, the choice
// kept in localStorage, the browser's language the default. Elements name their label with
// data-i18n="key"; code asks t("key", {name: value}).

const STORAGE_KEY = "smartcity.console.language";
export const LANGUAGES = ["vi", "en"];

let current = "en";
let dictionary = {};
let english = {};
const listeners = new Set();

export function initialLanguage() {
  const stored = localStorage.getItem(STORAGE_KEY);
  if (LANGUAGES.includes(stored)) return stored;
  const wanted =
    navigator.languages && navigator.languages.length
      ? navigator.languages
      : [navigator.language || "en"];
  for (const tag of wanted) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

async function load(language) {
  const response = await fetch(`i18n/${language}.json`, { cache: "no-cache" });
  if (!response.ok) throw new Error(`no dictionary for ${language}`);
  return response.json();
}

export async function setLanguage(language) {
  const chosen = LANGUAGES.includes(language) ? language : "en";
  if (!Object.keys(english).length) english = await load("en");
  dictionary = chosen === "en" ? english : await load(chosen);
  current = chosen;
  localStorage.setItem(STORAGE_KEY, chosen);
  document.documentElement.lang = chosen;
  translate(document);
  for (const listener of listeners) listener(chosen);
}

export function language() {
  return current;
}

export function t(key, values = {}) {
  const text = dictionary[key] ?? english[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) =>
    name in values ? String(values[name]) : whole,
  );
}

export function translate(root) {
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
}

export function onLanguageChange(listener) {
  listeners.add(listener);
}
