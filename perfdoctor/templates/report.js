// perfdoctor report: sortable tables, and every <details> open when printing. No data, no fetches.
(function () {
  "use strict";
  function sortKey(cell) {
    var raw = cell ? cell.getAttribute("data-v") : null;
    if (raw !== null && raw !== "" && !isNaN(Number(raw))) return Number(raw);
    return cell ? cell.textContent.trim().toLowerCase() : "";
  }
  function compare(x, y) {
    if (typeof x !== typeof y) return typeof x === "number" ? -1 : 1;
    return x < y ? -1 : x > y ? 1 : 0;
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    if (!table.tHead || !table.tBodies.length) return;
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, column) {
      th.tabIndex = 0;
      th.classList.add("sort");
      function sort() {
        var descending = th.getAttribute("aria-sort") !== "descending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var order = compare(sortKey(a.cells[column]), sortKey(b.cells[column]));
          return descending ? -order : order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); }
      });
    });
  });
  // Trace links open the trace view that `perfdoctor view RUN` (or the TensorBoard tab) serves
  // next to this report. Opened from disk, there is nothing to open: say how to serve it.
  if (window.location.protocol === "file:") {
    // The run directory; a report of foreign traces sits in DIR/perfdoctor-report/ or NAME.perfdoctor/ beside them.
    var folder = decodeURIComponent(window.location.pathname).replace(/\/[^\/]*$/, "").replace(/\/(perfdoctor-report|[^\/]*\.perfdoctor)$/, "") || ".";
    Array.prototype.forEach.call(document.querySelectorAll("a.trace-link"), function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        var list = link.closest("ul, p, div") || link.parentNode;
        if (list.nextElementSibling && list.nextElementSibling.classList.contains("js-note")) return;
        var note = document.createElement("p");
        note.className = "js-note";
        note.appendChild(document.createTextNode("The trace view is served by perfdoctor. Run "));
        var code = document.createElement("code");
        code.textContent = "perfdoctor view " + folder;
        note.appendChild(code);
        note.appendChild(document.createTextNode(": it opens this report in your browser, with this link working (nothing leaves your machine)."));
        list.parentNode.insertBefore(note, list.nextSibling);
      });
    });
  }
  window.addEventListener("beforeprint", function () {
    Array.prototype.forEach.call(document.querySelectorAll("details"), function (d) { d.open = true; });
  });
})();
