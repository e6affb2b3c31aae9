# frozen_string_literal: true

require "spec_helper"
require "set"

# Cluster mode against real processes: a master, forked workers, signals, a config file.
RSpec.describe "cluster mode (lunar -w N)" do
  let(:cluster_boot) { %r{cluster of (\d+) workers, .*master pid (\d+), up to \d+ × \d+ = \d+ connections, listening on tcp://127\.0\.0\.1:(\d+)} }

  let(:hook_log) { File.join(scratch_dir("lunar-hooks"), "hooks.log") }

  def start_cluster(*args, app: fixture("pid.ru"), env: {})
    child = spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:0", "-t", "2", *args, app), env: { "HOOK_LOG" => hook_log }.merge(env))
    port = Integer(child.wait_for(cluster_boot)[3])
    [child, port]
  end

  def get(port, path = "/")
    Net::HTTP.get_response(URI("http://127.0.0.1:#{port}#{path}"))
  end

  # Pids of the workers that answer, over fresh connections, until `count` were seen.
  def answering_pids(port, count)
    seen = Set.new
    eventually(timeout: 20) do
      seen << get(port).body.to_i
      seen.size >= count
    end
    seen
  end

  def children_of(pid)
    File.read("/proc/#{pid}/task/#{pid}/children").split.map(&:to_i)
  end

  it "runs inline workers (--io-threads 0): each answers on its app thread" do
    child, port = start_cluster("-w", "2", "--io-threads", "0")
    expect(answering_pids(port, 2).size).to eq(2)
    child.signal("TERM")
    expect(child.exit_status.exitstatus).to eq(0)
  end

  it "forks workers that share the socket, runs the hooks, and drains every worker on TERM" do
    child, port = start_cluster("-C", fixture("cluster_config.rb"), "-w", "2")
    master = child.pid
    workers = answering_pids(port, 2)
    expect(workers).not_to include(master)
    expect(Set.new(children_of(master))).to eq(workers)
    master_threads = Dir["/proc/#{master}/task/*/comm"].map { |f| File.read(f).strip }
    expect(master_threads.grep(/lunar|tokio|reactor/)).to be_empty # no runtime, no reactor: safe to fork again

    inflight = Thread.new { get(port, "/slow?1").body }
    child.wait_for(%r{started /slow})
    child.signal("TERM")
    child.wait_for(/stopping gracefully/)
    expect(workers).to include(inflight.value.to_i) # finished, not cut
    expect(child.exit_status.exitstatus).to eq(0)
    log = File.readlines(hook_log, chomp: true)
    expect(log.grep(/before_fork/)).to eq(["before_fork #{master}"])
    expect(log.grep(/boot/).map { |l| l.split.last.to_i }.to_set).to eq(workers)
    expect(log.grep(/shutdown/).size).to eq(2)
  end

  it "leaves new connections to an idle worker while every thread of another is busy (wait_for_less_busy_worker)" do
    child, port = start_cluster("-w", "2", "-t", "1")
    slow = Thread.new { get(port, "/slow?3") }
    busy = Integer(child.wait_for(%r{started /slow in (\d+)})[1])
    answered = Array.new(6) do
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      [get(port).body.to_i, Process.clock_gettime(Process::CLOCK_MONOTONIC) - started]
    end
    expect(answered.map(&:first)).not_to include(busy) # none queued behind the 3 s request
    expect(answered.map(&:last).max).to be < 1
    expect(slow.value.code).to eq("200")
  end

  it "replaces a worker killed with -9, and keeps serving" do
    child, port = start_cluster("-w", "2")
    victim, survivor = answering_pids(port, 2).to_a
    Process.kill("KILL", victim)
    index = child.wait_for(/worker (\d) \(pid #{victim}\) killed by SIGKILL; starting another/)[1]
    replacement = Integer(child.wait_for(/worker #{index} booted, pid (?!#{victim}\b)(\d+)/)[1])
    expect(Set.new(children_of(child.pid))).to eq(Set[survivor, replacement])
    expect(answering_pids(port, 2)).to eq(Set[survivor, replacement])
  end

  it "keeps serving through a kill -9 under load: only requests the killed worker held fail" do
    child, port = start_cluster("-w", "2")
    victim = answering_pids(port, 2).first
    hammer = Hammer.new(port)
    eventually { hammer.ok > 50 }
    Process.kill("KILL", victim)
    index = child.wait_for(/worker (\d) \(pid #{victim}\) killed by SIGKILL/)[1]
    child.wait_for(/worker #{index} booted, pid (?!#{victim}\b)\d+/) # its replacement
    served = hammer.ok
    eventually(timeout: 20) { hammer.ok > served + 100 }
    _, failed = hammer.stop
    expect(failed).to be <= 4 # at most the one request each client had in flight on the victim
  ensure
    hammer&.stop
  end

  it "stops with a clear error, not a fork loop, when workers cannot boot" do
    child = spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:0", "-w", "2", fixture("fails_to_boot.ru")))
    expect(child.exit_status(timeout: 30).exitstatus).to eq(1)
    output = child.rest
    expect(output).to include("this app cannot boot")
    expect(output).to match(/workers failed to boot 3 times in a row; stopping the cluster/)
    expect(output.scan(/failed to boot:/).size).to be <= 4
  end

  it "loads the app once, in the master, with --preload; in each worker without" do
    log = File.join(scratch_dir("lunar-load"), "load.log")
    child, port = start_cluster("-w", "2", "--preload", env: { "LOAD_LOG" => log })
    answering_pids(port, 2)
    expect(File.readlines(log, chomp: true)).to eq(["loaded #{child.pid}"])

    File.delete(log)
    other, port = start_cluster("-w", "2", env: { "LOAD_LOG" => log })
    workers = answering_pids(port, 2)
    expect(File.readlines(log, chomp: true).map { |l| l.split.last.to_i }.to_set).to eq(workers)
    expect(workers).not_to include(other.pid)
  end

  it "replaces every worker one at a time on USR1, refusing no connection and failing no request" do
    child, port = start_cluster("-w", "2")
    before = answering_pids(port, 2)
    hammer = Hammer.new(port)
    eventually { hammer.ok > 50 }
    served_before = hammer.ok
    child.signal("USR1")
    child.wait_for(/phased restart done/, timeout: 60)
    served_during = hammer.ok - served_before
    eventually { hammer.ok > served_before + served_during + 50 } # and after it
    _, failed = hammer.stop
    expect(failed).to eq(0)
    expect(served_during).to be > 0 # no gap while the workers were replaced
    after = answering_pids(port, 2)
    expect(after & before).to be_empty
    expect(Set.new(children_of(child.pid))).to eq(after)
  ensure
    hammer&.stop
  end

  it "adds a worker on TTIN and removes one on TTOU" do
    child, port = start_cluster("-w", "2")
    answering_pids(port, 2)
    child.signal("TTIN")
    child.wait_for(/worker 2 booted/)
    eventually { children_of(child.pid).size == 3 }
    expect(answering_pids(port, 3).size).to eq(3)
    child.signal("TTOU")
    child.wait_for(/worker 2 \(pid \d+\) stopping/)
    eventually { children_of(child.pid).size == 2 }
    expect(get(port).code).to eq("200")
  end

  it "serves a Unix socket from every worker, and removes its file when the cluster stops" do
    path = File.join(scratch_dir("lunar-unix"), "lunar.sock")
    child = spawn_child(lunar_cmd("-b", "unix://#{path}", "-w", "2", fixture("pid.ru")))
    child.wait_for(%r{cluster of 2 workers.*listening on unix://#{Regexp.escape(path)}})
    seen = Set.new
    eventually(timeout: 20) do
      UNIXSocket.open(path) do |sock|
        sock.write("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        seen << Integer(sock.read[/\r\n\r\n(\d+)\z/, 1])
      end
      seen.size == 2
    end
    child.signal("TERM")
    expect(seen).to eq(Set.new(children_of(child.pid)))
    expect(child.exit_status.exitstatus).to eq(0)
    expect(File.exist?(path)).to be(false)
  end

  it "runs one EventMachine reactor per worker in evented mode" do
    child, port = start_cluster("-w", "2", "--evented", app: fixture("em_pid.ru"))
    expect(child.lines.join).to match(/evented mode/)
    answers = Set.new
    eventually(timeout: 20) do
      answers << get(port).body
      answers.size >= 2
    end
    expect(answers.map(&:split).to_set { |pid, on_reactor| [Integer(pid), on_reactor] })
      .to eq(children_of(child.pid).to_set { |pid| [pid, "true"] }) # each worker answered from its own reactor
  end
end
