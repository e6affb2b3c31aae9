# frozen_string_literal: true

require "spec_helper"
require "set"

# Started as systemd starts a service: a listening socket already open on descriptor 3
# (LISTEN_FDS, LISTEN_PID naming the service's own pid), and NOTIFY_SOCKET naming a Unix
# datagram socket that receives sd_notify states. The pid is only known once the process
# exists, so a shell sets LISTEN_PID=$$ and execs Lunar, as systemd does after forking.
RSpec.describe "under systemd" do
  let(:dir) { scratch_dir("lunar-systemd") }
  let(:notify_path) { File.join(dir, "notify") }
  let(:notify) { Socket.new(:UNIX, :DGRAM).tap { |s| s.bind(Socket.sockaddr_un(notify_path)) } }
  let(:activated) { TCPServer.new("127.0.0.1", 0) }

  after do
    notify.close
    activated.close
  end

  def start(*args)
    notify # bound before the service starts
    command = ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"', "sh", *lunar_cmd(*args, fixture("pid.ru"))]
    spawn_child(command, env: { "NOTIFY_SOCKET" => notify_path }, spawn: { 3 => activated })
  end

  # The next datagram's state (its first line); the STATUS= lines that came with it are
  # kept in `statuses`.
  def state(timeout: 20)
    raise "no sd_notify state within #{timeout}s" unless notify.wait_readable(timeout)

    first, *rest = notify.recv(4096).split("\n")
    statuses.concat(rest)
    first
  end

  def statuses = (@statuses ||= [])

  def get(path = "/")
    Net::HTTP.get_response(URI("http://127.0.0.1:#{activated.addr[1]}#{path}"))
  end

  # Pids answering on the passed socket (pid.ru), over fresh connections, until `count`.
  def answering_pids(count)
    seen = Set.new
    eventually(timeout: 20) { (seen << Integer(get.body)).size >= count }
    seen
  end

  def children_pids(pid) = File.read("/proc/#{pid}/task/#{pid}/children").split.to_set { |p| Integer(p) }

  [[], %w[-w 2]].each do |mode|
    it "feeds systemd's watchdog (WATCHDOG_USEC)#{' from a cluster master' unless mode.empty?}" do
      notify
      command = ["sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh", *lunar_cmd("-b", "tcp://127.0.0.1:0", *mode, fixture("pid.ru"))]
      child = spawn_child(command, env: { "NOTIFY_SOCKET" => notify_path, "WATCHDOG_USEC" => "400000" })
      states = [state]
      states << state until states.last == "READY=1" # a master feeds it while its workers boot, too
      expect(states.uniq - ["WATCHDOG=1"]).to eq(["READY=1"])
      expect(Array.new(3) { state(timeout: 2) }).to eq(["WATCHDOG=1"] * 3)
      child.signal("TERM")
      expect(child.exit_status.exitstatus).to eq(0)
    end
  end

  it "serves the socket it was passed, and says READY=1 and STOPPING=1" do
    child = start
    expect(state).to eq("READY=1")
    expect(statuses).to match([/\ASTATUS=Lunar \S+ serving, threaded mode/])
    expect(child.wait_for(/listening on (\S+)/)[1]).to eq("tcp://127.0.0.1:#{activated.addr[1]}")
    expect(get.body).to eq(child.pid.to_s)
    child.signal("TERM")
    expect(state).to eq("STOPPING=1")
    expect(child.exit_status.exitstatus).to eq(0)
  end

  it "hands the passed socket to every worker of a cluster, and says RELOADING=1 around a phased restart" do
    child = start("-w", "2")
    expect(state).to eq("READY=1")
    child.wait_for(%r{listening on tcp://127\.0\.0\.1:#{activated.addr[1]}})
    before = answering_pids(2)
    expect(before).to eq(children_pids(child.pid)) # every worker serves the passed socket
    child.signal("USR1")
    expect(state).to eq("RELOADING=1")
    expect(state(timeout: 60)).to eq("READY=1")
    expect(statuses).to eq(["STATUS=Lunar #{Lunar::VERSION}: 2 of 2 workers serving, phase 0",
                            "STATUS=Lunar #{Lunar::VERSION}: 2 of 2 workers serving, phase 1"])
    after = answering_pids(2)
    expect(after & before).to be_empty # new workers, serving it too
    expect(after).to eq(children_pids(child.pid))
    child.signal("TERM")
    expect(state).to eq("STOPPING=1")
    expect(child.exit_status.exitstatus).to eq(0)
  end
end
