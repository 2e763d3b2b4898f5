// The API key this page sends: asked for when the server answers 401, kept in this browser
// (localStorage), sent as `Authorization: Bearer`.

import { ApiError } from "/ui/api.js";

const STORE = "mlxcli.apiKey";
const $ = (id) => document.getElementById(id);
let key = localStorage.getItem(STORE) || "";
let asking = null; // the open dialog's answer: requests refused together all wait for it

export function askKey(message) {
  if (asking) return asking;
  const dialog = $("key-dialog");
  $("key-message").textContent = message;
  $("key-input").value = key;
  dialog.showModal();
  asking = new Promise((resolve) => {
    const done = (saved) => {
      $("key-form").onsubmit = null;
      $("key-cancel").onclick = null;
      dialog.close();
      asking = null;
      resolve(saved);
    };
    $("key-form").onsubmit = (event) => {
      event.preventDefault();
      key = $("key-input").value.trim();
      if (key) localStorage.setItem(STORE, key);
      else localStorage.removeItem(STORE);
      done(true);
    };
    $("key-cancel").onclick = () => done(false);
  });
  return asking;
}

// call(key); on a 401, asks for the key and calls again (until the dialog is cancelled).
export async function withKey(call) {
  for (;;) {
    try {
      return await call(key);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) throw err;
      const message = key ? "The API key was refused: enter another one." : "This server requires an API key.";
      if (!(await askKey(message))) throw err;
    }
  }
}
