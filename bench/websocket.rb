# frozen_string_literal: true

# WebSockets, same run (issue #10):
#   (a) N WebSocket subscribers of the Comet demo's /socket, one POST /publish: Lunar's
#       native Topic#websocket (?native=1), faye-websocket on Lunar --evented (rack.hijack),
#       and faye-websocket on Thin 1.8 (its own adapter): time to open, RSS per held socket,
#       delivery p50/p99/max; then every client closes at once and the RSS is read again;
#   (b) echo round trips per second over 1 and 100 sockets, faye-websocket on Lunar
#       --evented vs on Puma 5 (-t 4:4, rack.hijack), bench/apps/ws_echo.ru.
# Load: bench/crates/wsload processes, from source addresses 127.0.0.2… Loopback only.
# Run through bench/run-websocket. Appends to docs/benchmarks.md.
require_relative "support"
include BenchSupport # rubocop:disable Style/MixinUsage -- a script, not a library

WSLOAD = File.join(ROOT, "target/release/lunar-wsload")
SOCKETS = Integer(ENV.fetch("BENCH_SOCKETS", "10000"))
ECHO_SECONDS = Integer(ENV.fetch("BENCH_SECONDS", "5"))

# Every server inherits the same open-file limit: the hard limit, raised when we may
# (root with CAP_SYS_RESOURCE).
begin
  Process.setrlimit(:NOFILE, 65_536, 65_536)
rescue Errno::EPERM, Errno::EINVAL
  Process.setrlimit(:NOFILE, Process.getrlimit(:NOFILE).last)
end

def lunar(port, app) = lunar_command(port, app, "--evented", "--timeout", "0", "--queue", "20000")

# A hijacked plain-TCP connection is handed over as the client's own socket: one
# descriptor, as for Thin (it was three, with a relayed socket pair, before issue #17).
HIJACK_CAP = [SOCKETS, Process.getrlimit(:NOFILE).first - 500].min

FANOUT = {
  "Lunar, Topic#websocket" => ->(port) { [lunar(port, COMET_APP), "1", SOCKETS] },
  "Lunar, faye-websocket" => ->(port) { [lunar(port, COMET_APP), "0", HIJACK_CAP] },
  "Thin 1.8, faye-websocket" => ->(port) { [thin_command(port, COMET_APP, "-t", "0", "--max-conns", "20000"), "0", SOCKETS] },
}.freeze

def wsloaders(mode, port, count, path, wait)
  count.fdiv(PER_LOAD_PROCESS).ceil.times.map do |i|
    share = [PER_LOAD_PROCESS, count - (i * PER_LOAD_PROCESS)].min
    IO.popen([WSLOAD, mode, port.to_s, share.to_s, (2 + i).to_s, path, wait.to_s])
  end
end

# Opens `count` sockets and waits until the demo counts them; returns the loaders and how
# many opened, how many the server holds, and the slowest open.
def open_sockets(port, count, native)
  loads = wsloaders("hold", port, count, "/socket?after=0&native=#{native}", 60)
  opened = loads.map { |io| io.gets.split.drop(1).map(&:to_i) }
  deadline = Time.now + 30
  sleep 0.1 until comet_stats(port)["sockets"] >= opened.sum(&:first) || Time.now > deadline
  [loads, comet_stats(port)["sockets"], opened.map(&:last).max / 1000.0]
end

# Every client closes at once (their processes are killed); waits for the server to notice,
# then 2 s more, and returns its RSS in KiB.
def close_storm(pid, port, loads)
  kill_loaders(loads)
  loads.each { |io| io.close unless io.closed? } # reaps them
  deadline = Time.now + 20
  sleep 0.1 until comet_stats(port)["sockets"].zero? || Time.now > deadline
  sleep 2
  rss_kib(pid)
end

# Descriptors the server process has open now.
def descriptors(pid) = Dir.children("/proc/#{pid}/fd").size

# One publish to every held socket: the sorted delivery latencies, in ms.
def publish_latencies(port, loads)
  published_at = (Time.now.to_r * 1_000_000).to_i
  Net::HTTP.post(URI("http://127.0.0.1:#{port}/publish"), "msg=fan-out")
  times = loads.flat_map { |io| io.gets && io.gets.split.drop(1).map(&:to_i) }
  times.map { |t| (t - published_at) / 1000.0 }.sort
end

# Hold, one publish, a close storm; then hold and close again, so that "after" is compared
# with itself: memory a storm leaks would show as growth from the first to the second.
def fanout(name)
  loads = nil
  port = free_port
  command, native, count = FANOUT.fetch(name).call(port)
  with_server(command, port, env: LIB_ENV, chdir: ROOT) do |pid|
    base = rss_kib(pid)
    base_fds = descriptors(pid)
    loads, held, open_s = open_sockets(port, count, native)
    held_rss = rss_kib(pid)
    fds = (descriptors(pid) - base_fds).fdiv([held, 1].max)
    latencies = publish_latencies(port, loads)
    after = close_storm(pid, port, loads)
    loads, = open_sockets(port, count, native)
    again = close_storm(pid, port, loads)
    { held: held, of: count, open_s: open_s, kib: (held_rss - base).fdiv([held, 1].max), fds: fds,
      base_mib: base / 1024.0, held_mib: held_rss / 1024.0, after_mib: after / 1024.0, again_mib: again / 1024.0,
      got: latencies.size, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: latencies.last || Float::NAN }
  end
ensure
  kill_loaders(loads)
end

ECHO_APP = File.join(ROOT, "bench/apps/ws_echo.ru")
ECHO = {
  "Lunar --evented, faye-websocket" => ->(port) { lunar(port, ECHO_APP) },
  "Puma 5 (-t 4:4), faye-websocket" => ->(port) { puma_command(port, ECHO_APP, "-t", "4:4") },
}.freeze

def echo(name, sockets)
  load = nil
  port = free_port
  with_server(ECHO.fetch(name).call(port), port, env: LIB_ENV, chdir: ROOT) do |pid|
    before = cpu_seconds(pid)
    load = wsloaders("echo", port, sockets, "/", ECHO_SECONDS).first
    load.gets # open
    trips = load.gets.split.last.to_i
    cpu = cpu_seconds(pid) - before
    { rps: trips.fdiv(ECHO_SECONDS), cpu_us: cpu / [trips, 1].max * 1e6 }
  end
ensure
  kill_loaders([load].compact)
end

fan = FANOUT.keys.to_h { |n| [n, fanout(n)] }
fan.each do |n, r|
  warn format("%-28s held %d/%d, open %.1fs, %.2f KiB/socket, %.2f fds/socket, p50 %.1f p99 %.1f ms, got %d, RSS %.0f→%.0f→%.0f→%.0f MiB",
              n, r[:held], r[:of], r[:open_s],
              r[:kib], r[:fds], r[:p50], r[:p99], r[:got], r[:base_mib], r[:held_mib], r[:after_mib], r[:again_mib])
end
echoes = [1, 100].flat_map { |n| ECHO.keys.map { |name| [[name, n], echo(name, n)] } }.to_h
echoes.each { |(name, n), r| warn format("%-34s %3d sockets: %8.0f round trips/s, %.1f µs server CPU each", name, n, r[:rps], r[:cpu_us]) }

report = <<~MD

  ## WebSockets (same run)

  Measured by `bench/run-websocket` on #{Time.now.utc.strftime('%Y-%m-%d')}, #{Etc.nprocessors} cores.

  ### #{SOCKETS} WebSocket subscribers, one publish

  The Comet demo's `/socket` (`examples/comet`): Lunar's native `Topic#websocket`
  (`?native=1`), faye-websocket on Lunar `--evented` (through `rack.hijack`: the client's own socket),
  and faye-websocket on Thin (its own adapter). RSS per socket is the server's growth while
  holding them; delivery runs from just before `POST /publish` until each client has the
  message. Then every client closes at once and RSS is read 2 s later; then as many
  sockets open and close again, and RSS is read once more (a leak would show as growth
  from the first storm to the second). Descriptors per socket: the server's open descriptors
  while holding them, less before, over the sockets held (a hijacked plain-TCP connection
  is the client's own socket, handed to the app); open-file limit #{Process.getrlimit(:NOFILE).first}.

  | server | sockets held | time to open | RSS per held socket | descriptors per socket | fan-out p50 | p99 | max | got the message | RSS before → held → after storm 1 → after storm 2 |
  | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
  #{fan.map { |n, r| format('| %s | %d of %d | %.1f s | %.2f KiB | %.2f | %.1f ms | %.1f ms | %.1f ms | %d | %.0f → %.0f → %.0f → %.0f MiB |', n, r[:held], r[:of], r[:open_s], r[:kib], r[:fds], r[:p50], r[:p99], r[:max], r[:got], r[:base_mib], r[:held_mib], r[:after_mib], r[:again_mib]) }.join("\n")}

  ### Echo round trips (faye-websocket, bench/apps/ws_echo.ru, #{ECHO_SECONDS} s)

  | server | sockets | round trips/s | server CPU per round trip |
  | --- | ---: | ---: | ---: |
  #{echoes.map { |(name, n), r| format('| %s | %d | %.0f | %.1f µs |', name, n, r[:rps], r[:cpu_us]) }.join("\n")}
MD
File.write(File.join(ROOT, "docs/benchmarks.md"), report, mode: "a")
puts report
