// The page at the service's root: paste a title and text, see the labels. Calls POST /predict, as any
// client does; no library, nothing loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);

async function describeModel() {
  try {
    const r = await fetch("/model");
    if (!r.ok) throw new Error(`${r.status}`);
    const m = await r.json();
    $("model").textContent = `Model ${m.name} (${m.method}, version ${m.version}): ${m.n_labels} labels.`;
  } catch (e) {
    $("model").textContent = "The model is not loaded yet.";
  }
}

function showError(message) {
  $("status").textContent = message;
  $("status").className = "error";
  $("results").hidden = true;
}

function detailOf(body) {
  if (!body || body.detail === undefined) return "";
  if (typeof body.detail === "string") return body.detail;
  return body.detail.map((d) => d.msg).join("; ");
}

function showLabels(labels) {
  const tbody = $("results").querySelector("tbody");
  tbody.replaceChildren();
  labels.forEach((label, i) => {
    const tr = document.createElement("tr");
    tr.className = "label";
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.round(label.score * 8)}rem`;
    for (const [cls, value] of [["rank", i + 1], ["name", label.name], ["id", label.id],
                                ["score", label.score.toFixed(4)]]) {
      const td = document.createElement("td");
      td.className = cls;
      td.textContent = value;
      if (cls === "score") td.appendChild(bar);
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  });
  $("results").hidden = labels.length === 0;
  $("status").className = "";
  $("status").textContent = labels.length ? `${labels.length} labels` : "No label reaches the threshold.";
}

async function suggest(event) {
  event.preventDefault();
  const title = $("title").value, text = $("text").value;
  if (!title.trim() && !text.trim()) {
    showError("Give a title, a text or both.");
    return;
  }
  const body = { title, text, k: Number($("k").value) || 10 };
  if ($("threshold").value !== "") body.threshold = Number($("threshold").value);
  const headers = { "Content-Type": "application/json" };
  if ($("key").value) headers["X-API-Key"] = $("key").value;
  $("status").className = "";
  $("status").textContent = "...";
  try {
    const r = await fetch("/predict", { method: "POST", headers, body: JSON.stringify(body) });
    const answer = await r.json().catch(() => null);
    if (!r.ok) {
      showError(`${r.status}: ${detailOf(answer) || r.statusText}`);
      return;
    }
    showLabels(answer.labels);
  } catch (e) {
    showError(`The service did not answer (${e.message}).`);
  }
}

$("form").addEventListener("submit", suggest);
describeModel();
