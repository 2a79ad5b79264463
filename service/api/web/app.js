// The page's entry point: "/" shows the searches, "/ui/searches/{id}" one search.

import {ListView} from "./list.js";
import {SearchView} from "./search.js";

window.enasStarted = true;
const root = document.getElementById("app");
const match = location.pathname.match(/^\/ui\/searches\/(\d+)\/?$/);
const view = match ? new SearchView(root, match[1]) : new ListView(root);
view.start().catch((error) => {
  root.innerHTML = `<div class="error-box"></div>`;
  root.firstChild.textContent = error.status === 404 ? `search ${match ? match[1] : ""} not found` : `cannot load: ${error.message}`;
});
