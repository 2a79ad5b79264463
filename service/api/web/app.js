// The page's entry point: "/" shows the searches, "/ui/searches/{id}" one search.

import {ListView} from "./list.js";
import {SearchView} from "./search.js";
import {showSignIn} from "./signin.js";

window.enasStarted = true;
const root = document.getElementById("app");
const match = location.pathname.match(/^\/ui\/searches\/(\d+)\/?$/);
const view = match ? new SearchView(root, match[1]) : new ListView(root);

async function start() {
  // A server with tokens answers 401 until the page has signed in (its cookie): ask for the token.
  const probe = await fetch("/searches?limit=1", {headers: {Accept: "application/json"}}).catch(() => null);
  if (probe && probe.status === 401) {
    showSignIn(root);
    return;
  }
  await view.start();
}

start().catch((error) => {
  root.innerHTML = `<div class="error-box"></div>`;
  root.firstChild.textContent = error.status === 404 ? `search ${match ? match[1] : ""} not found` : `cannot load: ${error.message}`;
});
