# frozen_string_literal: true

# Restarts that drop nothing (issue #16), Lunar and Puma in the same run, wrk -t1 -c20
# -d8s on hello world (bench/apps/bench.ru) across:
#   (a) a phased restart: `-w 2`, USR1 to the master 2 s in;
#   (b) a stop and a new server on the same systemd socket: this script holds the
#       listening socket (as systemd does) and passes it to server A (LISTEN_FDS); 2 s in it
#       starts server B on the same socket, waits for its READY=1, then sends A TERM.
# What counts: wrk's socket errors (connect, read, write, timeout) and non-2xx answers.
# Run through bench/run-restarts. Appends to docs/benchmarks.md; draws docs/charts/restarts.svg.
require_relative "support"
require_relative "chart"
include BenchSupport # rubocop:disable Style/MixinUsage -- a script, not a library

ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "2"))
SECONDS = Integer(ENV.fetch("BENCH_SECONDS", "8"))
APP = File.join(ROOT, "bench/apps/bench.ru")

Result = Struct.new(:requests, :errors, :non_2xx)

def wrk(port)
  IO.popen(["wrk", "-t1", "-c20", "-d#{SECONDS}s", "http://127.0.0.1:#{port}/"], err: %i[child out])
end

def wrk_result(io)
  out = io.read
  io.close
  errors = out[/Socket errors: (.*)$/, 1].to_s.scan(/\d+/).sum(&:to_i)
  Result.new(out[/(\d+) requests in/, 1].to_i, errors, out[/Non-2xx or 3xx responses: (\d+)/, 1].to_i)
end

def phased_restart(command, port)
  with_server(command, port) do |pid|
    sleep 2 # every worker booted and serving before the load starts
    load = wrk(port)
    sleep 2
    Process.kill("USR1", pid)
    wrk_result(load)
  end
end

# A server started as systemd starts one: the socket on descriptor 3, NOTIFY_SOCKET set.
# Returns its pid and its stdout.
def activated(command, socket, notify_path)
  shell = ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"', "sh", *command]
  out, writer = IO.pipe
  pid = Process.spawn(LIB_ENV.merge("NOTIFY_SOCKET" => notify_path), *shell, 3 => socket, out: writer, err: File::NULL)
  writer.close
  [pid, out]
end

# Serving: Lunar says READY=1 to the notify socket; Puma 5 (no sd_notify of its own)
# prints "Use Ctrl-C to stop" once listening.
def ready?(notify, out, within)
  deadline = Time.now + within
  while (readable, = IO.select([notify, out], nil, nil, [deadline - Time.now, 0].max))
    return true if readable.include?(notify) && notify.recv(4096).include?("READY=1")
    return true if readable.include?(out) && out.gets.to_s.include?("Ctrl-C")
  end
  false
end

def replaced_on_socket(command)
  Dir.mktmpdir do |dir|
    socket = TCPServer.new("127.0.0.1", 0)
    port = socket.addr[1]
    notify = Socket.new(:UNIX, :DGRAM).tap { |s| s.bind(Socket.sockaddr_un(File.join(dir, "notify"))) }
    first, out = activated(command.call(port), socket, File.join(dir, "notify"))
    raise "the first server did not start" unless ready?(notify, out, 20)

    load = wrk(port)
    sleep 2
    second, out = activated(command.call(port), socket, File.join(dir, "notify"))
    raise "the second server did not start" unless ready?(notify, out, 20)

    Process.kill("TERM", first)
    Process.wait(first)
    result = wrk_result(load)
    [second].each { |pid| process_tree(pid).reverse_each { |p| gone_as_zero { Process.kill("KILL", p) } } && Process.wait(pid) }
    socket.close
    result
  end
end

servers = {
  "Lunar -w 2" => ->(port) { lunar_command(port, APP, "-w", "2") },
  "Puma 5 -w 2 -t 4:4" => ->(port) { puma_command(port, APP, "-w", "2", "-t", "4:4") },
}
single = {
  "Lunar" => ->(port) { lunar_command(port, APP) },
  "Puma 5 -t 4:4" => ->(port) { puma_command(port, APP, "-t", "4:4") - ["-q"] },
}

phased = Hash.new { |h, k| h[k] = [] }
replaced = Hash.new { |h, k| h[k] = [] }
ROUNDS.times do
  servers.each { |name, command| phased[name] << phased_restart(command.call(port = free_port), port).tap { |r| warn "#{name} USR1: #{r.to_a}" } }
  single.each { |name, command| replaced[name] << replaced_on_socket(command).tap { |r| warn "#{name} replaced: #{r.to_a}" } }
end

def rows(results)
  results.map do |name, runs|
    "| #{name} | #{runs.map(&:requests).join(', ')} | #{runs.map(&:errors).join(', ')} | #{runs.map(&:non_2xx).join(', ')} |"
  end.join("\n")
end

chart_rows = phased.map { |name, runs| ["#{name}, USR1", runs.sum(&:errors) + runs.sum(&:non_2xx)] } +
             replaced.map { |name, runs| ["#{name}, replaced on the socket", runs.sum(&:errors) + runs.sum(&:non_2xx)] }
BenchChart.bars("restarts", title: "Requests failed across a restart (wrk -c20, #{ROUNDS} runs each; fewer is better)",
                            rows: chart_rows, unit: "failed")

report = <<~MD

  ## Restarts that drop nothing (same run)

  `bench/run-restarts`: `wrk -t1 -c20 -d#{SECONDS}s` on hello world across a restart 2 s in,
  #{ROUNDS} runs each, servers alternated. Failed = wrk's socket errors + non-2xx answers.
  ![failed requests](charts/restarts.svg)

  ### Phased restart (USR1 to the master)

  | server | requests | socket errors | non-2xx |
  | --- | --- | --- | --- |
  #{rows(phased)}

  ### A new server on the same systemd socket, then TERM to the old one

  | server | requests | socket errors | non-2xx |
  | --- | --- | --- | --- |
  #{rows(replaced)}
MD
puts report
File.write(File.join(ROOT, "docs/benchmarks.md"), report, mode: "a")
