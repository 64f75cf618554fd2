// perfdoctor viewer pages: choosing a run or a trace opens it (the Show/Open button does the
// same without scripts). No data, no fetches.
(function () {
  "use strict";
  Array.prototype.forEach.call(document.querySelectorAll("form.run-picker select"), function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
})();
