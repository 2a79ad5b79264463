// Sign-in for a server with tokens: the token is posted once to /session, which keeps it in an
// HttpOnly cookie (SameSite=Strict) that authenticates the page's reads; the page never stores it.

export function showSignIn(root, message = "") {
  root.innerHTML = "";
  const form = document.createElement("form");
  form.className = "signin";
  const title = document.createElement("h2");
  title.textContent = "Sign in";
  const hint = document.createElement("p");
  hint.className = "muted";
  hint.textContent = "This server needs a token (one of ENAS_AUTH_TOKENS).";
  const input = document.createElement("input");
  input.type = "password";
  input.name = "token";
  input.autocomplete = "current-password";
  input.placeholder = "token";
  input.required = true;
  const button = document.createElement("button");
  button.type = "submit";
  button.textContent = "Sign in";
  const problem = document.createElement("p");
  problem.className = "error-box";
  problem.hidden = !message;
  problem.textContent = message;
  form.append(title, hint, input, button, problem);
  root.append(form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await fetch("/session", {
      method: "POST",
      headers: {"Content-Type": "application/json", Accept: "application/json"},
      body: JSON.stringify({token: input.value}),
    }).catch(() => null);
    if (response && response.ok) {
      location.reload();
      return;
    }
    const body = response ? await response.json().catch(() => ({})) : {};
    problem.hidden = false;
    problem.textContent = body.error ? body.error.message : "cannot reach the server";
  });
  input.focus();
}
