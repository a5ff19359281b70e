// Vigil staff console: draw the plots from their JSON, tick the SLA countdowns, "select all".
// Plain JavaScript, no inline script (the CSP allows scripts from the console only).
(function () {
  "use strict";
  function drawPlots() {
    if (!window.Plotly) { return; }
    document.querySelectorAll(".plot[data-figure]").forEach(function (el) {
      var data = document.getElementById(el.getAttribute("data-figure"));
      if (!data) { return; }
      var fig = JSON.parse(data.textContent);
      var config = { responsive: true, displaylogo: false, topojsonURL: "/console/static/topojson/" };
      window.Plotly.newPlot(el, fig.data, fig.layout, config);
    });
  }
  function span(ms) {
    var s = Math.floor(Math.abs(ms) / 1000), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600),
        m = Math.floor(s % 3600 / 60), r = s % 60;
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return (d ? d + "d " : "") + (d || h ? h + "h " : "") + two(m) + "m " + two(r) + "s";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll(".countdown[data-due]").forEach(function (el) {
      var left = Date.parse(el.getAttribute("data-due")) - now;
      if (isNaN(left)) { return; }
      el.textContent = left >= 0 ? span(left) + " " + el.getAttribute("data-left")
                                 : span(left) + " " + el.getAttribute("data-over");
      el.classList.toggle("over", left < 0);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var all = document.getElementById("check-all");
    if (all) {
      all.addEventListener("change", function () {
        document.querySelectorAll("input[name=alert_id]").forEach(function (b) { b.checked = all.checked; });
      });
    }
    tick();
    setInterval(tick, 1000);
    drawPlots();
  });
})();
