#!/bin/sh
# npm audit of the production dependencies (high and critical advisories), for the reliability
# report and by hand. Needs the npm registry's audit endpoint: when it cannot be reached (offline CI,
# a mirror that refuses the bulk-advisory POST) it says so and exits 3 — unavailable, not clean.
# Exit: 0 clean, 1 high/critical advisories, 3 audit unavailable.
cd "$(dirname "$0")/.." || exit 3
out=$(npm audit --omit=dev --audit-level=high --json 2>/dev/null)
rc=$?
summary=$(printf '%s' "$out" | node -e '
  let text = ""; process.stdin.on("data", (d) => (text += d)).on("end", () => {
    let j; try { j = JSON.parse(text); } catch { console.log("unavailable: npm audit printed no JSON"); process.exit(3); }
    const v = j.metadata && j.metadata.vulnerabilities;
    if (!v) { console.log("unavailable: " + String(j.message || (j.error && j.error.summary) || "no vulnerability summary").split("\n")[0]); process.exit(3); }
    console.log(`high ${v.high} critical ${v.critical} (moderate ${v.moderate}, low ${v.low}; ${j.metadata.dependencies && j.metadata.dependencies.prod} production dependencies)`);
    process.exit(v.high + v.critical > 0 ? 1 : 0);
  });')
code=$?
echo "npm audit --omit=dev: $summary"
[ $code -eq 0 ] && [ $rc -ne 0 ] && code=1
exit $code
