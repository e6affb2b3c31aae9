# frozen_string_literal: true

require "spec_helper"

# Thin's async response protocol (docs/async-protocol.md), in evented mode: the app runs on
# a real EventMachine reactor and answers later through env['async.callback'].
RSpec.describe "the async response protocol (evented mode)" do
  let(:events) { Queue.new }
  let(:log) { StringIO.new }

  def evented(app = nil, **options, &block)
    serve(app || block, mode: :evented, **options)
  end

  it "runs the app on the reactor and answers [-1, {}, []] later through async.callback" do
    server = evented do |env|
      events << EM.reactor_thread?
      EM.add_timer(0.05) { env["async.callback"].call([200, { "content-type" => "text/plain" }, ["later"]]) }
      [-1, {}, []]
    end
    response = get(server)
    expect([response.code, response.body]).to eq(%w[200 later])
    expect(pop_within(events)).to be(true)
  end

  it "sends the head at once and each chunk as the deferrable body is called, ending on succeed" do
    gate = Queue.new
    server = evented do |env|
      body = SeedBody.new
      EM.next_tick { env["async.callback"].call([200, { "content-type" => "text/plain" }, body]) }
      Thread.new do
        pop_within(gate)
        EM.schedule { body.call(["Woah, async!\n"]) }
        pop_within(gate)
        EM.schedule do
          body.call(["Cheers then!"])
          body.succeed
        end
      end
      [-1, {}, []]
    end
    sock = connect(server)
    sock.write("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    expect(read_until(sock, /\r\n\r\n/)).to start_with("HTTP/1.1 200 OK").and include("Transfer-Encoding: chunked")
    gate << :first
    expect(read_until(sock, /Woah/)).to include("Woah, async!\n")
    gate << :second
    rest = read_until(sock, /0\r\n\r\n/)
    expect(rest).to include("Cheers then!").and end_with("0\r\n\r\n")
    sock.write("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n") # keep-alive still works
    gate << :a << :b
    expect(read_all(sock)).to include("Cheers then!")
  ensure
    sock&.close
  end

  it "treats throw :async from inside middleware as an async response" do
    inner = lambda do |env|
      EM.next_tick { env["async.callback"].call([200, { "content-length" => "6" }, ["thrown"]]) }
      throw :async
    end
    middleware = ->(env) { inner.call(env).tap { raise "not reached" } }
    expect(get(evented(middleware)).body).to eq("thrown")
  end

  it "accepts async.callback from a plain Thread and delivers at once" do
    server = evented do |env|
      Thread.new { env["async.callback"].call([200, { "content-length" => "7" }, ["foreign"]]) }
      [-1, {}, []]
    end
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    expect(get(server).body).to eq("foreign")
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 0.1
  end

  it "lets the first call win, ignores [-1, …] calls, and closes on nil" do
    server = evented do |env|
      cb = env["async.callback"]
      env["rack.errors"] = log
      EM.next_tick do
        if env["PATH_INFO"] == "/nil"
          cb.call(nil)
        else
          cb.call([-1, {}, []])
          cb.call([200, { "content-length" => "5" }, ["first"]])
          cb.call([201, { "content-length" => "6" }, ["second"]])
        end
      end
      [-1, {}, []]
    end
    text = raw(server, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    expect(text).to start_with("HTTP/1.1 200").and end_with("first")
    expect(text).not_to include("second")
    eventually { log.string.include?("called again") }
    expect(raw(server, "GET /nil HTTP/1.1\r\nHost: h\r\n\r\n")).to eq("")
  end

  it "ends a deferred body on fail too, after the app's own errbacks, then calls close" do
    seen = events
    server = evented do |env|
      body = SeedBody.new
      body.errback { seen << :app_errback }
      body.define_singleton_method(:close) { seen << :close }
      EM.next_tick do
        env["async.callback"].call([200, {}, body])
        body.call(["partial "])
        EM.next_tick { body.fail }
      end
      [-1, {}, []]
    end
    text = raw(server, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    expect(text).to include("partial ").and end_with("0\r\n\r\n")
    expect([pop_within(events), pop_within(events)]).to eq(%i[app_errback close])
  end

  it "ends at once for a deferrable that had already succeeded" do
    server = evented do |env|
      body = SeedBody.new
      body.succeed
      EM.next_tick { env["async.callback"].call([200, { "content-type" => "text/plain" }, body]) }
      [-1, {}, []]
    end
    http(server) do |h|
      expect(h.get("/").body).to eq("")
      expect(h.get("/").code).to eq("200")
    end
    request = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    answers = on_one_connection(server, [request, request], /0\r\n\r\n\z/) # and the connection stays usable
    expect(answers).to all(start_with("HTTP/1.1 200").and(end_with("0\r\n\r\n")))
  end

  it "succeeds async.close on completion, and on disconnect before body.fail, dropping later writes" do
    body = nil
    server = evented do |env|
      env["async.close"].callback { events << [:async_close, env["PATH_INFO"]] }
      if env["PATH_INFO"] == "/done"
        [200, { "content-length" => "2" }, ["ok"]]
      else
        body = SeedBody.new
        body.errback { events << :body_failed }
        EM.next_tick do
          env["async.callback"].call([200, {}, body])
          body.call(["tick\n"])
        end
        [-1, {}, []]
      end
    end
    get(server, "/done")
    expect(pop_within(events)).to eq([:async_close, "/done"])
    sock = connect(server)
    sock.write("GET /stream HTTP/1.1\r\nHost: h\r\n\r\n")
    read_until(sock, /tick/)
    sock.close
    expect([pop_within(events), pop_within(events)]).to eq([[:async_close, "/stream"], :body_failed])
    EM.schedule do
      body.call(["after the client left\n"])
      events << :no_raise
    end
    expect(pop_within(events)).to eq(:no_raise)
  end

  it "fires async.close when the client leaves while the response is still pending" do
    server = evented do |env|
      env["async.close"].callback { events << :closed }
      [-1, {}, []]
    end
    sock = connect(server)
    sock.write("GET /poll HTTP/1.1\r\nHost: h\r\n\r\n")
    eventually { server.pending_async == 1 }
    sock.close
    expect(pop_within(events)).to eq(:closed)
    eventually { server.pending_async.zero? }
  end

  it "sends only the head for HEAD, still calling each, and ends on succeed" do
    server = evented do |env|
      body = SeedBody.new
      EM.next_tick do
        env["async.callback"].call([200, { "content-type" => "text/plain" }, body])
        body.call(["discarded"]) # the seed app's later write must not raise
        body.succeed
        events << :written
      end
      [-1, {}, []]
    end
    text = raw(server, "HEAD / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    expect(text).to start_with("HTTP/1.1 200").and end_with("\r\n\r\n")
    expect(text).not_to include("discarded")
    expect(pop_within(events)).to eq(:written)
  end

  it "logs exceptions in app.call, in body.each and in reactor callbacks, and keeps serving" do
    server = evented(timeout: 0) do |env|
      env["rack.errors"] = log
      case env["PATH_INFO"]
      when "/call" then raise "in call"
      when "/tick"
        EM.next_tick { raise "in next_tick" }
        [200, { "content-length" => "4" }, ["tick"]]
      when "/each"
        body = Object.new
        def body.each = raise("in each")
        EM.next_tick { env["async.callback"].call([200, {}, body]) }
        [-1, {}, []]
      else [200, { "content-length" => "2" }, ["ok"]]
      end
    end
    expect(get(server, "/call").code).to eq("500")
    expect(get(server, "/tick").body).to eq("tick")
    expect(status_of(raw_until_close(server, "GET /each HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))).to eq("500") # raised before yielding
    expect(get(server, "/fine").body).to eq("ok")
    eventually { log.string.include?("in each") }
    expect(log.string).to include("in call")
    expect(EM.reactor_running?).to be(true)
  end

  it "answers pipelined async requests in order" do
    server = evented do |env|
      delay = env["PATH_INFO"] == "/slow" ? 0.1 : 0.0
      EM.add_timer(delay) { env["async.callback"].call([200, { "content-length" => env["PATH_INFO"].size.to_s }, [env["PATH_INFO"]]]) }
      [-1, {}, []]
    end
    text = raw(server, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\nGET /fast HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    expect(text.scan(%r{\r\n\r\n(/slow|/fast)})).to eq([["/slow"], ["/fast"]])
  end

  it "closes a pending async response after the inactivity timeout, firing async.close" do
    server = evented(timeout: 0.3) do |env|
      env["async.close"].callback { events << :timed_out }
      [-1, {}, []]
    end
    text = raw_until_close(server, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", within: 3)
    expect(text).to eq("")
    expect(pop_within(events)).to eq(:timed_out)
  end

  it "lets a pending async response finish within the shutdown grace, and closes the rest with async.close" do
    server = evented(shutdown_timeout: 0.5) do |env|
      env["async.close"].callback { events << [:closed, env["PATH_INFO"]] }
      EM.add_timer(0.1) { env["async.callback"].call([200, { "content-length" => "4" }, ["soon"]]) } if env["PATH_INFO"] == "/soon"
      [-1, {}, []]
    end
    soon = Thread.new { get(server, "/soon").body }
    never = Thread.new { raw(server, "GET /never HTTP/1.1\r\nHost: h\r\n\r\n") }
    eventually { server.pending_async == 2 }
    server.stop.wait
    expect(soon.value).to eq("soon")
    expect(never.value).to eq("")
    expect([pop_within(events), pop_within(events)]).to contain_exactly([:closed, "/soon"], [:closed, "/never"])
  end

  # Thin stops when its reactor does. A server whose reactor has gone would accept
  # connections and never answer them, and its stop would wait on the reactor forever.
  describe "when the reactor ends under the server" do
    it "stops when the app calls EM.stop, firing async.close for what was pending; a new server gets a new reactor" do
      server = evented do |env|
        env["async.close"].callback { events << :closed }
        if env["PATH_INFO"] == "/stop"
          EM.next_tick { EM.stop }
          next [200, { "content-length" => "2" }, ["ok"]]
        end
        [-1, {}, []] # pending until the stop
      end
      port = server.port
      pending = Thread.new { raw(server, "GET /held HTTP/1.1\r\nHost: h\r\n\r\n") }
      eventually { server.pending_async == 1 }
      expect(get(server, "/stop").body).to eq("ok")
      Timeout.timeout(10) { server.wait } # it stopped by itself
      expect(pop_within(events)).to eq(:closed)
      expect(pending.value).to eq("")
      expect { TCPSocket.new("127.0.0.1", port).close }.to raise_error(Errno::ECONNREFUSED)
      expect(get(evented { [200, { "content-length" => "5" }, ["again"]] }).body).to eq("again")
    end

    it "stops when an exception gets past the app's own error handler" do
      stranger = Class.new(Exception) # rubocop:disable Lint/InheritException -- what the spec is about
      server = evented { [200, { "content-length" => "2" }, ["ok"]] }
      port = server.port
      expect(get(server).body).to eq("ok")
      EM.error_handler { |e| raise e } # an app's own, which lets it through
      EM.next_tick { raise stranger, "past every handler" } # outside any request
      Timeout.timeout(10) { server.wait }
      expect(server.running?).to be(false)
      expect { TCPSocket.new("127.0.0.1", port).close }.to raise_error(Errno::ECONNREFUSED) # what a client sees
    ensure
      EM.error_handler # removed: the next reactor gets Lunar's again
    end
  end
end
