// The partner page's charts. Each figure is Plotly JSON built by certification/charts.py and
// embedded with json_script. A chart that is drawn closes its table (one click opens it
// again); a chart that cannot be drawn (no Plotly, bad JSON) leaves its table open.
(function () {
  function draw() {
    if (!window.Plotly) return;
    var plots = document.querySelectorAll(".chart[data-figure]");
    Array.prototype.forEach.call(plots, function (el) {
      var data = document.getElementById(el.getAttribute("data-figure"));
      if (!data) return;
      var figure;
      try {
        figure = JSON.parse(data.textContent);
      } catch (e) {
        return;
      }
      el.hidden = false;
      try {
        window.Plotly.newPlot(el, figure.data, figure.layout, {
          displaylogo: false,
          responsive: true,
          modeBarButtonsToRemove: ["select2d", "lasso2d"],
        }).then(function () {
          el.setAttribute("data-drawn", "true");
          var table = el.parentNode.querySelector("details.chart-table");
          if (table) table.open = false;
        }, function () {
          el.hidden = true;
        });
      } catch (e) {
        el.hidden = true; // this chart's table stays open; the others are still drawn
      }
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
