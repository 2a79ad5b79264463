// Talking to the API: JSON and text fetches, and following a search's events.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function request(path, accept) {
  const response = await fetch(path, {headers: {Accept: accept}});
  if (response.ok) return response;
  const body = await response.json().catch(() => ({}));
  throw new ApiError(body.error ? body.error.message : `HTTP ${response.status}`, response.status);
}

export async function getJSON(path) {
  return (await request(path, "application/json")).json();
}

export async function getText(path, accept = "*/*") {
  return (await request(path, accept)).text();
}

const EVENT_TYPES = ["status", "epoch", "derived", "retrained", "finished"];

/**
 * Follow a search's Server-Sent Events; fall back to polling when the browser has no EventSource
 * or the stream fails for good (the server refused it, or `maxFailures` errors in a row).
 *
 * EventSource reconnects by itself after a dropped connection; the server replays the latest state
 * on each connection. The stream ends after a "finished" event: the source is closed then, so it
 * does not reconnect.
 *
 * @param {string} url the events URL
 * @param {object} options
 *   onEvent(event): each event (parsed JSON);
 *   onMode(mode): "connecting" | "live" | "reconnecting" | "polling" | "closed";
 *   poll(): async, refreshes the page from the API; resolves false when there is nothing more to follow;
 *   pollMs, maxFailures.
 * @returns {{close: function}}
 */
export function followEvents(url, {onEvent, onMode, poll, pollMs = 2000, maxFailures = 3}) {
  let source = null;
  let timer = null;
  let closed = false;
  let failures = 0;

  const close = () => {
    closed = true;
    if (source) source.close();
    clearTimeout(timer);
  };

  const tick = async () => {
    let again = true;
    try {
      again = await poll();
    } catch (error) {
      again = true;  // the API is away for a moment: keep trying
    }
    if (closed) return;
    if (again) timer = setTimeout(tick, pollMs);
    else onMode("closed");
  };

  const startPolling = () => {
    if (source) source.close();
    source = null;
    if (closed) return;
    onMode("polling");
    tick();
  };

  if (!("EventSource" in window)) {
    startPolling();
    return {close};
  }
  source = new EventSource(url);
  onMode("connecting");
  source.onopen = () => {
    failures = 0;
    onMode("live");
  };
  source.onerror = () => {
    if (closed || !source) return;
    failures += 1;
    if (source.readyState === EventSource.CLOSED || failures >= maxFailures) startPolling();
    else onMode("reconnecting");
  };
  for (const type of EVENT_TYPES) {
    source.addEventListener(type, (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      if (type === "finished") {
        close();
        onMode("closed");
      }
      onEvent(event);
    });
  }
  return {close};
}
