#!/usr/bin/env bash
#   scripts/install-kafka.sh [VERSION...]   (default: every version pinned, which the tests need; the demo asks
#                                           for KAFKA_VERSION only)
# Installs the Apache Kafka versions pinned in scripts/kafka/versions.env for the end-to-end tests: Maven
# resolves the broker, the tools and the client with their runtime dependencies (scripts/kafka/pom.xml) into
# ${KAAS_CACHE:-$HOME/.cache/kaas}/kafka/<version>/libs/, outside the repository. A version whose folder was
# completed from the same pom is skipped; a run that stops half-way leaves nothing that looks complete.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[kafka]\033[0m %s\n' "$*"; }
# shellcheck source=kafka/versions.env
source scripts/kafka/versions.env
CACHE="${KAAS_CACHE:-$HOME/.cache/kaas}/kafka"
mkdir -p "$CACHE"

# A class-data archive of a started broker (AppCDS, Java 17's -XX:ArchiveClassesAtExit): brokers that map it
# start in about 60 % of the time and CPU. One training run makes it once the jars are in place (it records
# their paths), and again when the JVM changes (it is only valid for the JVM that wrote it). tests/src/kafka.rs
# uses it when present; without it, or with a stale one, brokers just start slower, so a failed run only warns.
train_class_archive() {
  local version=$1 dest=$2 jvm work ports pid
  jvm=$(java -XshowSettings:properties -version 2>&1 | grep -E '^ *java\.vm\.version' | tr -d ' ')
  if [[ -f $dest/kafka.jsa && -f $dest/kafka.jsa.jvm && $(<"$dest/kafka.jsa.jvm") == "$jvm" ]]; then
    return
  fi
  log "$version: training a class-data archive"
  work=$(mktemp -d)
  mapfile -t ports < <(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
for x in s: print(x.getsockname()[1])')
  cat >"$work/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${ports[1]}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:${ports[0]},CONTROLLER://127.0.0.1:${ports[1]}
log.dirs=$work/data
offsets.topic.replication.factor=1
PROPS
  local logging="-Dlog4j2.configurationFile=$PWD/scripts/kafka/log4j2.properties"
  [[ $version == 3.* ]] && logging="-Dlog4j.configuration=file:$PWD/scripts/kafka/log4j.properties"
  # The class path exactly as the tests write it: the archive is only used with the same one.
  local java=(java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC "-Dkafka.logs.dir=$work" "$logging"
    -cp "$dest/libs/*")
  # Any cluster id will do (16 bytes, URL-safe base64).
  if ! "${java[@]}" kafka.tools.StorageTool format --cluster-id a2Fhcy10cmFpbmluZy0wMQ \
    --config "$work/server.properties" >"$work/format.log" 2>&1; then
    log "$version: no class-data archive, formatting failed (brokers start without it); see $work"
    return
  fi
  "${java[@]}" -XX:ArchiveClassesAtExit="$dest/kafka.jsa.tmp" kafka.Kafka "$work/server.properties" \
    >"$work/out.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    grep -q 'Kafka Server started' "$work/server.log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -TERM "$pid" 2>/dev/null || true  # an orderly exit writes the archive
  wait "$pid" || true
  if [[ ! -s $dest/kafka.jsa.tmp ]]; then
    log "$version: no class-data archive (brokers start without it); see $work"
    return
  fi
  mv "$dest/kafka.jsa.tmp" "$dest/kafka.jsa"
  printf '%s\n' "$jvm" >"$dest/kafka.jsa.jvm"
  rm -rf "$work"
}

versions=("$@")
((${#versions[@]})) || versions=("$KAFKA_VERSION" "$KAFKA_3_VERSION")
for version in "${versions[@]}"; do
  dest="$CACHE/$version"
  # The marker names the version and the pom it came from, so editing the pom re-resolves.
  stamp="$version $(sha256sum scripts/kafka/pom.xml | cut -d' ' -f1)"
  if [[ -f $dest/complete && $(<"$dest/complete") == "$stamp" ]]; then
    log "$version: $dest/libs"
    train_class_archive "$version" "$dest"
    continue
  fi
  log "$version: resolving from Maven Central into $dest/libs"
  profile=()
  [[ $version == 3.* ]] || profile=(-P log4j2)  # see the pom: Kafka 4 needs its SLF4J binding added
  tmp=$(mktemp -d "$CACHE/.$version.XXXXXX")
  chmod 755 "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  # Maven's output is shown only when it fails (even -q -B prints stray colour codes).
  if ! mvn -q -B -f scripts/kafka/pom.xml "${profile[@]}" dependency:copy-dependencies \
    -Dkafka.version="$version" -DincludeScope=runtime -DoutputDirectory="$tmp/libs" >"$tmp/mvn.log" 2>&1; then
    cat "$tmp/mvn.log" >&2
    exit 1
  fi
  rm "$tmp/mvn.log"
  if [[ ! -f $tmp/libs/kafka_2.13-$version.jar ]]; then
    echo "kafka $version: no broker jar after resolution" >&2
    exit 1
  fi
  printf '%s\n' "$stamp" >"$tmp/complete"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  trap - EXIT
  log "$version: $(ls "$dest/libs" | wc -l) jars"
  train_class_archive "$version" "$dest"
done
