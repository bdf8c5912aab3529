# table.awk DEFS RESULTS: print the benchmark table.
# DEFS (tab-separated, written by run.sh):
#   peer ID LABEL | section ID TITLE PEER-IDS | metric SECTION KEY LABEL lower|higher
#   | note SECTION TEXT | ceiling SECTION PEER-ID
# RESULTS: val KEY PEER VALUE | fail SECTION PEER REASON
# Sections whose id does not start with a word of `only` are left out.
# Each metric gets a row per peer with tide's value divided by the peer's and
# a verdict that reads the same whichever direction is better. A section with
# a ceiling peer gets one more column: each peer's value divided by the
# ceiling's (peer/C).
BEGIN { FS = "\t" }

FNR == NR {
  if ($1 == "peer") label[$2] = $3
  else if ($1 == "section" && wanted($2)) { sections[++ns] = $2; title[$2] = $3; peers[$2] = $4 }
  else if ($1 == "metric") { metrics[$2, ++nm[$2]] = $3; mlabel[$3] = $4; better[$3] = $5 }
  else if ($1 == "note") notes[$2, ++nn[$2]] = $3
  else if ($1 == "ceiling") ceil[$2] = $3
  next
}
$1 == "val" { val[$2, $3] = $4 }
$1 == "fail" { fail[$2, $3] = $4 }

function wanted(id,    n, w, i) {
  n = split(only, w, " ")
  for (i = 1; i <= n; i++) if (index(id, w[i]) == 1) return 1
  return n == 0
}

function commas(s,    out) {
  while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
  return s out
}

function fmt(v) {
  if (v >= 999.5) return commas(sprintf("%.0f", v))
  if (v >= 100) return sprintf("%.0f", v)
  if (v >= 10) return sprintf("%.1f", v)
  if (v >= 1) return sprintf("%.2f", v)
  return sprintf("%.3f", v)
}

function verdict(r, dir,    good) {
  if (r > 0.97 && r < 1.03) return "about the same"
  good = (dir == "lower") ? r < 1 : r > 1
  if (r < 1) r = 1 / r
  return sprintf("%.2fx %s", r, good ? "better" : "worse")
}

function cell(key, peer, sec) {
  if ((key, peer) in val) return fmt(val[key, peer])
  return "n/a"
}

function why(key, peer, sec) {
  if ((sec, peer) in fail) return "n/a: " fail[sec, peer]
  return "n/a: no value printed"
}

END {
  print "tide/peer is tide's value divided by the peer's; \"better\" says which"
  print "direction wins for that metric, and the last column reads it out."
  for (i = 1; i <= ns; i++) {
    s = sections[i]
    np = split(peers[s], plist, " ")
    printf "\n== %s ==\n", title[s]
    c = (s in ceil) ? ceil[s] : ""
    printf "%-27s %-7s %11s  %-34s %11s %10s%s  %s\n", "metric", "better", "tide", "peer", "peer value", "tide/peer",
      (c != "" ? sprintf(" %7s", "peer/" toupper(c)) : ""), "tide is"
    if ((s, "tide") in fail) printf "%-27s %-7s %11s  %s\n", "tide", "", "n/a", fail[s, "tide"]
    for (j = 1; j <= nm[s]; j++) {
      k = metrics[s, j]
      t = cell(k, "tide", s)
      first = 1
      for (p = 1; p <= np; p++) {
        if (plist[p] == "tide") continue
        pv = cell(k, plist[p], s)
        if (t != "n/a" && pv != "n/a" && val[k, plist[p]] > 0) {
          r = val[k, "tide"] / val[k, plist[p]]
          ratio = sprintf("%.2f", r)
          v = verdict(r, better[k])
        } else {
          ratio = "-"
          v = (pv == "n/a") ? why(k, plist[p], s) : "-"
        }
        cr = ""
        if (c != "")
          cr = sprintf(" %7s", (pv != "n/a" && (k, c) in val && val[k, c] > 0) ? sprintf("%.2f", val[k, plist[p]] / val[k, c]) : "-")
        if (first)
          printf "%-27s %-7s %11s  %-34s %11s %10s%s  %s\n", mlabel[k], better[k], t, label[plist[p]], pv, ratio, cr, v
        else
          printf "%-27s %-7s %11s  %-34s %11s %10s%s  %s\n", "", "", "", label[plist[p]], pv, ratio, cr, v
        first = 0
      }
      if (first)  # a section where tide is the only entry
        printf "%-27s %-7s %11s\n", mlabel[k], better[k], (t == "n/a" ? why(k, "tide", s) : t)
    }
    for (j = 1; j <= nn[s]; j++) print "  " notes[s, j]
  }
}
