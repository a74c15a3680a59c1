// The judging page. Everything a model wrote is set with textContent, never as HTML. The token travels
// in an HttpOnly cookie the server set when the printed URL was opened; this script never sees it.
"use strict";
if (location.search) { history.replaceState(null, "", location.pathname); }  // the token out of the address bar
const $ = (id) => document.getElementById(id);
let screen = null;
let busy = false;

async function call(method, path, body) {
  const response = await fetch(path, {
    method, headers: {"Content-Type": "application/json"}, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) { throw new Error(data.error || response.statusText); }
  return data;
}

function rater() { return $("rater").value.trim(); }

function progress(data) {
  $("progress").textContent = `${data.done} of ${data.total} judged` +
    (data.identical ? ` (${data.identical} identical answers counted as ties, not shown)` : "");
  $("undo").disabled = !data.can_undo;
}

function show(data) {
  progress(data);
  if (data.finished) {
    screen = null;
    $("judging").hidden = true;
    $("finished").hidden = false;
    return;
  }
  screen = data.screen;
  $("prompt").textContent = data.prompt;
  $("context").textContent = data.context;
  $("answer-a").textContent = data.a;
  $("answer-b").textContent = data.b;
  $("comment").value = "";
  $("judging").hidden = false;
  $("finished").hidden = true;
  document.body.dataset.screen = screen;
}

async function run(action) {
  if (busy) { return; }
  busy = true;
  $("status").textContent = "";
  try { await action(); } catch (error) { $("status").textContent = error.message; } finally { busy = false; }
}

async function next() { show(await call("GET", `/api/next?rater=${encodeURIComponent(rater())}`)); }

async function vote(choice) {
  if (!screen) { return; }
  await call("POST", "/api/vote", {screen, choice, rater: rater(), comment: $("comment").value});
  await next();
}

async function undo() { show(await call("POST", "/api/undo", {rater: rater()})); }

function start() {
  if (!rater()) { $("status").textContent = "Enter your name first."; return; }
  localStorage.setItem("sizebench-rater", rater());
  run(next);
}

$("rater").value = localStorage.getItem("sizebench-rater") || "";
$("start").addEventListener("click", start);
$("rater").addEventListener("keydown", (e) => { if (e.key === "Enter") { start(); } });
for (const button of document.querySelectorAll("[data-choice]")) {
  button.addEventListener("click", () => run(() => vote(button.dataset.choice)));
}
$("undo").addEventListener("click", () => run(undo));
const keys = {"1": "A", "a": "A", "2": "tie", "t": "tie", "3": "B", "b": "B", "4": "bad", "x": "bad"};
document.addEventListener("keydown", (e) => {
  if (e.target instanceof HTMLInputElement || e.ctrlKey || e.metaKey || e.altKey || !screen) { return; }
  if (keys[e.key]) { e.preventDefault(); run(() => vote(keys[e.key])); }
  else if (e.key === "u") { e.preventDefault(); run(undo); }
});
