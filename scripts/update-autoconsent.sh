#!/bin/sh
# Refresh the bundled copy of DuckDuckGo's autoconsent (MPL-2.0), which `gazeback
# consent-check` injects into pages to answer cookie banners with its rules.
#
#   scripts/update-autoconsent.sh            # the newest release
#   scripts/update-autoconsent.sh 16.23.0    # one version
#
# Needs npm. Copies the Playwright content script, the rules and the licence into
# src/gazeback/data/autoconsent/ and records the version there (SOURCE.md). Review the
# diff, run tests/test_consent_check.py, and commit.
set -eu
version="${1:-latest}"
here="$(cd "$(dirname "$0")/.." && pwd)"
dest="$here/src/gazeback/data/autoconsent"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "@duckduckgo/autoconsent@$version" >/dev/null
tar xzf duckduckgo-autoconsent-*.tgz
got="$(node -p "require('./package/package.json').version")"
mkdir -p "$dest"
cp package/dist/autoconsent.playwright.js "$dest/autoconsent.playwright.js"
# the full rules (opt-in steps included), without whitespace
node -e "const r=require('./package/rules/rules.json'); process.stdout.write(JSON.stringify(r))" \
  > "$dest/rules.json"
cp package/LICENSE "$dest/LICENSE"
sha="$(sha256sum duckduckgo-autoconsent-*.tgz | cut -d' ' -f1)"
cat > "$dest/SOURCE.md" <<NOTE
# autoconsent (bundled)

- What: DuckDuckGo's autoconsent, the npm package \`@duckduckgo/autoconsent\`, version $got
  (package tarball sha256 $sha). Source: https://github.com/duckduckgo/autoconsent
- Files: \`dist/autoconsent.playwright.js\` (the content script made for Playwright) and
  \`rules/rules.json\` (the consent-management-platform rules, whitespace removed), unchanged.
- Licence: Mozilla Public License 2.0 (\`LICENSE\` here). These files stay under the MPL-2.0;
  gazeback only loads them into the pages \`gazeback consent-check\` opens.
- Update: \`scripts/update-autoconsent.sh [VERSION]\` (needs npm), then run
  \`tests/test_consent_check.py\` and commit.
NOTE
echo "autoconsent $got copied to $dest"
