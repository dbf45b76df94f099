// Enhancements only: every page works without this script.
// The rules page filters as you type; the form still works with it off.
(function () {
  var input = document.querySelector("[data-filter-rules]");
  if (!input) { return; }
  var rules = Array.prototype.slice.call(document.querySelectorAll(".rules > .rule"));
  var count = document.getElementById("rule-count");
  var total = count ? count.textContent.replace(/^\d+ of /, "") : "";
  input.addEventListener("input", function () {
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    rules.forEach(function (rule) {
      var text = rule.getAttribute("data-search") || "";
      var match = words.every(function (word) { return text.indexOf(word) !== -1; });
      rule.hidden = !match;
      if (match) { shown += 1; }
    });
    if (count) { count.textContent = shown + " of " + total; }
  });
}());
