// chainrule playground: the one rule for every number the page shows.
// Loaded before app.js by the page; tests run it in Node (it has no other dependency).
"use strict";

// formatNumber(v, digits): v rounded to `digits` significant digits (2 unless asked).
//   exactly 0 (and -0)      -> "0"
//   |rounded| in [1e-2, 1e4) -> fixed point with the digits kept: 0.5 -> "0.50", 123 -> "120"
//   otherwise               -> exponent form: 6.1e-4, -2.3e5
//   null, undefined, NaN    -> "—";  ±Infinity -> "∞" / "-∞"
// so a small δ shows as 6.1e-4 beside 0.25, never as 0.00 or -0.00.
function formatNumber(v, digits) {
  const sig = digits === undefined ? 2 : digits;
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (v === 0) return "0";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "-∞";
  const rounded = Number(v.toPrecision(sig));
  const a = Math.abs(rounded);
  if (a < 1e-2 || a >= 1e4) return rounded.toExponential(sig - 1).replace("e+", "e");
  const exponent = Number(a.toExponential().split("e")[1]);  // exact, unlike floor(log10(a))
  const decimals = Math.max(0, sig - 1 - exponent);
  return rounded.toFixed(decimals);
}

if (typeof module !== "undefined") module.exports = { formatNumber };
