# frozen_string_literal: true

require "spec_helper"

RSpec.describe "evented and threaded modes" do
  let(:events) { Queue.new }

  it "threaded with EventMachine loaded: runs the reactor beside the workers; async.callback works from a worker" do
    server = serve(mode: :threaded, threads: 2) do |env|
      events << [Thread.current.name, env["rack.multithread"], EM.reactor_running?]
      cb = env["async.callback"]
      EM.add_timer(0.02) { cb.call([200, { "content-length" => "5" }, ["timer"]]) } # a reactor timer
      [-1, {}, []]
    end
    expect(server.mode).to start_with("threaded mode, 2 threads") # inline adds ", doing the I/O (inline)"
    expect(get(server).body).to eq("timer")
    name, multithread, reactor = pop_within(events)
    expect(name).to start_with("lunar-worker")
    expect([multithread, reactor]).to eq([true, true])
  end

  it "threaded: a sync streaming body still works beside the reactor" do
    server = serve(mode: :threaded) { [200, {}, %w[a b c].each] }
    expect(get(server).body).to eq("abc")
  end

  it "evented: says so, and runs one app call at a time on the reactor thread" do
    server = serve(mode: :evented) do |env|
      events << [EM.reactor_thread?, env["rack.multithread"]]
      [200, { "content-length" => "2" }, ["ok"]]
    end
    expect(server.mode).to start_with("evented mode (EventMachine")
    3.times { expect(get(server).body).to eq("ok") }
    expect(Array.new(3) { pop_within(events) }.uniq).to eq([[true, false]])
  end

  describe "the lunar command" do
    it "runs the seed app verbatim with --evented: the head at once, the body about a second later" do
      child = spawn_child(lunar_cmd("--evented", "-b", "tcp://127.0.0.1:0", File.join(ProcessHelpers::ROOT, "examples/async/seed.ru")))
      booted = %r{evented mode \(EventMachine [^)]+\), pid \d+, up to \d+ connections \([^)]*\), listening on tcp://127\.0\.0\.1:(\d+)}
      port = Integer(child.wait_for(booted)[1])
      sock = TCPSocket.new("127.0.0.1", port)
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      sock.write("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
      head = read_until(sock, /\r\n\r\n/)
      head_at = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
      rest = read_all(sock, timeout: 5)
      done_at = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
      expect(head).to start_with("HTTP/1.1 200 OK").and include("Content-Type: text/plain")
      expect(head_at).to be < 0.5
      expect(rest).to include("Woah, async!\n").and include("Cheers then!").and end_with("0\r\n\r\n")
      expect(done_at).to be_between(0.9, 2.5)
      child.signal("TERM")
      expect(child.exit_status.exitstatus).to eq(0)
    ensure
      sock&.close
    end

    it "serves 50 concurrent seed requests in about one second of wall time" do
      child = spawn_child(lunar_cmd("--evented", "-b", "tcp://127.0.0.1:0", File.join(ProcessHelpers::ROOT, "examples/async/seed.ru")))
      port = Integer(child.wait_for(%r{listening on tcp://127\.0\.0\.1:(\d+)})[1])
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      bodies = Array.new(50) { Thread.new { Net::HTTP.get(URI("http://127.0.0.1:#{port}/")) } }.map(&:value)
      expect(bodies.uniq).to eq(["Woah, async!\nCheers then!"])
      expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 2.5
    end

    it "is threaded without EventMachine, and then offers no async keys" do
      child = spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:0", fixture("no_em.ru")))
      port = Integer(child.wait_for(%r{threaded mode, 5 threads, pid \d+, up to \d+ connections \([^)]*\), listening on tcp://127\.0\.0\.1:(\d+)})[1])
      expect(Net::HTTP.get(URI("http://127.0.0.1:#{port}/"))).to eq("async.callback=false async.close=false multithread=true")
    end

    it "tells the user about --evented when the app uses EventMachine without loading it" do
      child = spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:0", fixture("uses_em.ru")))
      expect(child.exit_status.exitstatus).to eq(1)
      expect(child.rest).to include("NameError").and include("lunar --evented")
    end
  end
end

RSpec.describe "EventMachine facilities in evented mode" do
  it "runs EM::Channel, EM.add_periodic_timer and EM.defer as under thin start" do
    channel = EM::Channel.new
    server = serve(mode: :evented) do |env|
      case env["PATH_INFO"]
      when "/subscribe"
        cb = env["async.callback"]
        sid = channel.subscribe { |msg| cb.call([200, { "content-length" => msg.bytesize.to_s }, [msg]]) }
        env["async.close"].callback { channel.unsubscribe(sid) }
        [-1, {}, []]
      when "/ticks"
        cb = env["async.callback"]
        ticks = 0
        timer = EM.add_periodic_timer(0.01) do
          ticks += 1
          next if ticks < 3

          timer.cancel
          cb.call([200, { "content-length" => "1" }, [ticks.to_s]])
        end
        [-1, {}, []]
      when "/defer"
        cb = env["async.callback"]
        EM.defer(-> { Thread.current.name.to_s.empty? ? "pool" : Thread.current.name }, ->(r) { cb.call([200, {}, ["deferred on #{r}"]]) })
        [-1, {}, []]
      end
    end
    subscriber = Thread.new { get(server, "/subscribe").body }
    eventually { channel.num_subscribers == 1 }
    EM.schedule { channel.push("published") }
    expect(subscriber.value).to eq("published")
    expect(get(server, "/ticks").body).to eq("3")
    expect(get(server, "/defer").body).to start_with("deferred on")
    eventually { channel.num_subscribers.zero? } # async.close unsubscribed it
  end

  # Thin reads a request only in a reactor turn after the EM.next_tick blocks scheduled before
  # it was sent: an app that registers a subscriber in a next_tick (the Comet demo's
  # EventSource streams) has it registered for any publish a client sends after seeing it
  # counted. Lunar's queue may hold requests that arrived while the reactor was busy; those
  # wait behind the blocks that requests taken earlier scheduled.
  # With a request whose client left while queued among the turn's events: nothing runs for
  # it, but it counts, so the turn still ends where the queue stood when it began.
  [nil, "a request whose client left while queued"].each do |gone|
    it "runs the EM.next_tick blocks a request scheduled before requests sent after it (Thin's order)#{", with #{gone}" if gone}" do
      registered = []
      blocked = Queue.new
      gate = Queue.new
      server = serve(mode: :evented) do |env|
        case env["PATH_INFO"]
        when "/block" # holds the reactor until the example lets it go: requests queue up meanwhile
          blocked << true
          pop_within(gate)
        when "/subscribe" then EM.next_tick { registered << :subscriber }
        when "/check" then next [200, {}, [registered.size.to_s]]
        end
        [200, {}, ["ok"]]
      end
      queued = ->(n) { eventually { server.stats[:backlog] == n } }
      first_block = Thread.new { get(server, "/block") }
      pop_within(blocked)
      subscribe = Thread.new { get(server, "/subscribe") }
      queued.call(1)
      queue_and_leave(server, "/gone") { queued.call(2) } if gone
      ahead = gone ? 2 : 1
      mark = Thread.new { get(server, "/mark") }
      queued.call(ahead + 1)
      second_block = Thread.new { get(server, "/block") }
      queued.call(ahead + 2)
      gate << true # the reactor takes the queued requests in one turn
      mark.value # answered with the subscriber's next_tick still to run
      pop_within(blocked)
      check = Thread.new { get(server, "/check") } # sent after the client saw /mark answered
      queued.call(1)
      gate << true
      expect(check.value.body).to eq("1")
      [first_block, subscribe, second_block].each(&:join)
    end
  end

  # Sends a request, waits (the block) until it is queued, then resets the connection and
  # waits until the server has let the connection go (its Closed notice is queued by then).
  # A reset, not a close: a client that only closes may have shut its write side to wait
  # for the answer (connection_spec.rb), and is answered.
  def queue_and_leave(server, path)
    connected = server.stats[:connections]
    socket = connect(server)
    socket.write("GET #{path} HTTP/1.1\r\nHost: x\r\n\r\n")
    yield
    socket.setsockopt(Socket::SOL_SOCKET, Socket::SO_LINGER, [1, 0].pack("ii"))
    socket.close
    eventually { server.stats[:connections] == connected }
  end
end
