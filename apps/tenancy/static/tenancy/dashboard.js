/* Usage dashboard: draws the per-day and per-service charts from the JSON the page embeds (Chart.js, vendored). */
(function () {
  "use strict";

  function draw() {
    var source = document.getElementById("dashboard-data");
    if (!source || typeof window.Chart === "undefined") {
      return;
    }
    var data = JSON.parse(source.textContent);
    var styles = getComputedStyle(document.documentElement);
    var primary = (styles.getPropertyValue("--primary") || "#79aec8").trim();
    var accent = (styles.getPropertyValue("--accent") || "#f5dd5d").trim();
    var text = (styles.getPropertyValue("--body-quiet-color") || "#666").trim();
    window.Chart.defaults.color = text;
    window.Chart.defaults.animation = false;
    var common = {
      responsive: true,
      maintainAspectRatio: false,
      plugins: { legend: { display: false } },
      scales: { y: { beginAtZero: true } }
    };
    var labels = data.days.map(function (day) { return day.slice(5); });

    new window.Chart(document.getElementById("chart-requests"), {
      type: "bar",
      data: { labels: labels, datasets: [{ label: "Requests", data: data.requests, backgroundColor: primary }] },
      options: common
    });
    new window.Chart(document.getElementById("chart-spend"), {
      type: "line",
      data: {
        labels: labels,
        datasets: [{ label: "Spend (USD)", data: data.spend, borderColor: primary, backgroundColor: accent, fill: false, tension: 0.2 }]
      },
      options: common
    });
    var servicesCanvas = document.getElementById("chart-services");
    if (servicesCanvas && data.services.length) {
      new window.Chart(servicesCanvas, {
        type: "bar",
        data: {
          labels: data.services.map(function (s) { return s.service; }),
          datasets: [
            { label: "Requests", data: data.services.map(function (s) { return s.requests; }), backgroundColor: primary, yAxisID: "y" },
            { label: "Spend (USD)", data: data.services.map(function (s) { return s.spend; }), backgroundColor: accent, yAxisID: "spend" }
          ]
        },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          indexAxis: "x",
          plugins: { legend: { display: true } },
          scales: {
            y: { beginAtZero: true, position: "left" },
            spend: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } }
          }
        }
      });
    }
    document.documentElement.setAttribute("data-dashboard-ready", "1");
  }

  var picker = document.getElementById("id_tenant");
  if (picker) {
    picker.addEventListener("change", function () { picker.form.submit(); });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
