// imrelay console: the only script. It refreshes the overview and asks before
// a destructive action; every page works without it.
"use strict";

function refreshOverview(section) {
  var url = section.getAttribute("data-refresh");
  var tick = function () {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (data) {
        Object.keys(data.numbers || {}).forEach(function (k) {
          var el = section.querySelector('[data-k="' + k + '"]');
          if (el) { el.textContent = String(data.numbers[k]); }
        });
        var charts = document.getElementById("charts");
        if (charts && typeof data.charts === "string") {
          // Server-rendered SVG from the same origin (no script in it).
          charts.innerHTML = data.charts;
        }
        section.setAttribute("data-refreshed", String(Date.now()));
        timer = setTimeout(tick, 3000);
      })
      .catch(function () { timer = setTimeout(tick, 15000); });
  };
  var timer = setTimeout(tick, 3000);
}

function livePreview(form, targetId) {
  var target = document.getElementById(targetId);
  var timer = null;
  var seq = 0;
  var send = function () {
    var mine = ++seq;
    fetch(form.getAttribute("action"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-Preview": "1" },
      body: new URLSearchParams(new FormData(form)),
    })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        // Only the latest answer counts; the fragment is server-escaped HTML.
        if (mine === seq) { target.innerHTML = html; target.setAttribute("data-seq", String(mine)); }
      });
  };
  var later = function () { clearTimeout(timer); timer = setTimeout(send, 300); };
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  form.querySelectorAll("button[data-sample]").forEach(function (b) {
    b.addEventListener("click", function () {
      document.getElementById(b.getAttribute("data-target")).value = b.getAttribute("data-sample");
      send();
    });
  });
}

document.addEventListener("DOMContentLoaded", function () {
  var render = document.getElementById("render-form");
  if (render) { livePreview(render, "preview"); }
  // The route editor: the preview follows the text; another route or
  // template loads its source (a whole-page submit).
  var route = document.getElementById("route-form");
  if (route) {
    livePreview(route, "route-preview");
    ["e-route", "e-template"].forEach(function (id) {
      var el = document.getElementById(id);
      if (el) { el.addEventListener("change", function (e) { e.stopPropagation(); route.submit(); }); }
    });
  }
  var section = document.querySelector("[data-refresh]");
  if (section) { refreshOverview(section); }
  document.querySelectorAll("button[data-confirm]").forEach(function (b) {
    b.addEventListener("click", function (e) {
      var lang = document.documentElement.lang || "en";
      var q = lang.indexOf("zh") === 0 ? "确定要清除吗？此操作无法撤销。" : "Purge for good? This cannot be undone.";
      if (!window.confirm(q)) { e.preventDefault(); }
    });
  });
});
