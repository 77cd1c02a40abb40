# make help: every target with a `## what it does` comment, under the heading it is written below
# (a `# Heading` line between two `# ----` rules), the descriptions aligned on the longest name.
# Called with the Makefile twice: the first pass measures the names, the second prints.
function target(line) { return substr(line, 1, index(line, ":") - 1) }
FNR == NR {
    if ($0 ~ /^[a-zA-Z0-9_-]+:.*## /) { n = length(target($0)); if (n > width) width = n }
    next
}
/^# -+$/ { ruled = !ruled; next }
ruled && /^# / { printf "%s%s\n", (printed ? "\n" : ""), substr($0, 3); printed = 1; next }
/^[a-zA-Z0-9_-]+:.*## / {
    printf "  %-" width "s  %s\n", target($0), substr($0, index($0, "## ") + 3); printed = 1
}
