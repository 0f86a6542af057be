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

document.addEventListener("DOMContentLoaded", function () {
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
