// The page is made of ES modules; say so when they cannot run (an old browser, a blocked file).
window.addEventListener("load", () => setTimeout(() => {
  if (window.enasStarted) return;
  const problem = document.getElementById("problem");
  problem.textContent = "The page's scripts did not start. The data is at /searches (JSON).";
  problem.hidden = false;
}, 4000));
