# frozen_string_literal: true

require "spec_helper"

RSpec.describe "server lifecycle" do
  let(:hello) { ->(_env) { [200, { "content-length" => "5" }, ["hello"]] } }

  it "starts and stops many times in one process" do
    5.times do
      server = Lunar::Server.new(hello, binds: ["tcp://127.0.0.1:0"], threads: 2).start
      expect(get(server).body).to eq("hello")
      server.stop(1).wait
      expect(server.running?).to be(false)
      expect { TCPSocket.new("127.0.0.1", server.port) }.to raise_error(Errno::ECONNREFUSED)
    end
  end

  # A script or a test run (Capybara's server) that never stops its server: Ruby kills the
  # workers as the process ends, and none of them may try to start a replacement then.
  it "lets the process end quietly with a server still running" do
    script = <<~RUBY
      require "lunar"
      require "lunar/request/server"
      require "net/http"
      server = Lunar::Server.new(->(_env) { [200, {}, ["up"]] }, binds: ["tcp://127.0.0.1:0"], threads: 2).start
      puts Net::HTTP.get(URI("http://127.0.0.1:\#{server.port}/"))
    RUBY
    child = spawn_child([RbConfig.ruby, "-e", script])
    expect(child.exit_status.success?).to be(true)
    expect(child.rest).to eq("up\n")
  end

  it "shares one reactor between evented servers in one process, stopped with the last of them" do
    async_hello = lambda do |env|
      EM.next_tick { env["async.callback"].call([200, { "content-length" => "5" }, ["async"]]) }
      [-1, {}, []]
    end
    first = Lunar::Server.new(async_hello, binds: ["tcp://127.0.0.1:0"], mode: :evented).start
    second = Lunar::Server.new(async_hello, binds: ["tcp://127.0.0.1:0"], mode: :evented).start
    reactor = EM.reactor_thread
    first.stop(1).wait
    expect(get(second).body).to eq("async") # the reactor outlived the server that started it
    Timeout.timeout(10) { second.stop(1).wait }
    expect(reactor.join(5)).to be_truthy # and stopped with the last one
  end

  it "serves a keep-alive connection's next request during a graceful stop, with Connection: close" do
    server = serve(shutdown_timeout: 5) { [200, { "content-length" => "2" }, ["ok"]] }
    sock = connect(server)
    sock.write("GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
    expect(read_until(sock, /ok\z/)).to start_with("HTTP/1.1 200")
    sleep 0.6 # older than the grace every new connection gets: the rule under test is the keep-alive one
    stopping = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    server.stop
    eventually { refused?(server.port) } # the stop has begun
    sock.write("GET /next HTTP/1.1\r\nHost: x\r\n\r\n") # a client that sent it as the stop began
    # ~10 ms after the stop; the stop leaves it 500 ms. Seen once on CI: an empty answer.
    late = format("written %.0f ms after the stop began", (Process.clock_gettime(Process::CLOCK_MONOTONIC) - stopping) * 1000)
    answer = read_to_eof(sock, within: 5)
    expect(answer).to start_with("HTTP/1.1 200").and(include("Connection: close")).and(end_with("ok")), "#{answer.inspect}, #{late}"
  ensure
    sock&.close
  end

  it "lets an in-flight request finish on a graceful stop, and refuses new connections" do
    started = Queue.new
    release = Queue.new
    server = serve(shutdown_timeout: 5) do
      started << true
      pop_within(release)
      [200, { "content-length" => "4" }, ["done"]]
    end
    inflight = Thread.new { get(server) }
    pop_within(started)
    server.stop
    eventually { refused?(server.port) }
    release << true
    expect(inflight.value.body).to eq("done")
    server.wait
  end

  it "closes what is still running when the grace period ends" do
    started = Queue.new
    server = serve(shutdown_timeout: 0.3) do
      started << true
      sleep 5
      [200, {}, ["late"]]
    end
    sock = connect(server)
    sock.write("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    pop_within(started)
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    server.stop.wait
    expect(read_to_eof(sock, within: 5)).not_to include("late")
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0).to be < 3
  ensure
    sock&.close
  end

  it "stops gracefully without waiting for a connection that never sent a byte (a browser's preconnect)" do
    server = serve(hello, shutdown_timeout: 10)
    silent = connect(server)
    eventually { server.live_connections == 1 }
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    server.stop.wait
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 3 # not the 10 s grace
  ensure
    silent&.close
  end

  it "lets Thread#kill interrupt a worker waiting for requests, and never loses a request" do
    server = serve(hello, threads: 1)
    native = server.instance_variable_get(:@native)
    waiter = Thread.new { native.next_event(nil) }
    eventually { waiter.backtrace.to_a.any? { |l| l.include?("next_event") } }
    waiter.kill
    expect(waiter.join(5)).to eq(waiter)
    expect(get(server).body).to eq("hello")
  end

  # A burst wakes one worker, not one per request (bridge/idle.rs): the woken worker must
  # wake the next for what it leaves queued, or requests wait behind a busy one.
  it "runs a burst of requests on every worker at once" do
    workers = 8
    inside = Queue.new
    all_in = Queue.new
    app = lambda do |_env|
      inside << true
      all_in.pop # until every request is inside the app
      [200, {}, ["together"]]
    end
    server = serve(app, threads: workers)
    socks = Array.new(workers) { connect(server) }
    socks.each { |s| s.write("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n") } # one burst
    workers.times { pop_within(inside) } # raises unless all are in the app at once
    workers.times { all_in << true }
    expect(socks.map { |s| read_all(s) }).to all(end_with("together"))
  ensure
    workers.times { all_in << true } # frees the workers if a request was left behind
    socks&.each(&:close)
  end

  it "answers 503 when the thread running a request is killed" do
    started = Queue.new
    server = serve(threads: 2) do |env|
      if env["PATH_INFO"] == "/victim"
        started << Thread.current
        sleep
      end
      [200, { "content-length" => "2" }, ["ok"]]
    end
    victim = Thread.new { get(server, "/victim") }
    pop_within(started).kill
    expect(victim.value.code).to eq("503")
    expect(get(server).body).to eq("ok")
  end
end
