# frozen_string_literal: true

require "spec_helper"

# Clients that abuse HTTP/2 (issue #18's probes that held memory or time): whatever they
# do, their connection ends within the configured limits, PINGs notwithstanding, and
# everyone else is served meanwhile. Memory under the same attacks is measured by
# bench/run-abuse (docs/security.md).
RSpec.describe "HTTP/2 under abuse" do
  let(:calls) { Queue.new }
  let(:app) do
    calls = self.calls
    big = ("x" * (1 << 20)).freeze
    lambda do |env|
      calls << env["PATH_INFO"]
      case env["PATH_INFO"]
      when "/big" then [200, { "content-type" => "text/plain" }, [big]]
      when "/stream" then [200, { "content-type" => "text/plain" }, SlowChunks.new(32)]
      when "/echo" then [200, {}, [env["rack.input"].read]]
      else [200, { "content-length" => "4" }, ["pong"]]
      end
    end
  end
  let(:limits) { { timeout: 2, write_timeout: 0.5, header_timeout: 1, connection_buffer: 2 << 20 } }

  def still_serving?(server)
    get(server, "/ping").body == "pong"
  end

  %i[threaded evented].each do |mode|
    %w[/big /stream].each do |path|
      it "ends a connection whose client shuts every window and PINGs (#{mode}, #{path}), serving others meanwhile" do
        server = serve(app, mode: mode, **limits)
        h2 = H2Connection.new(server.port, settings_initial_window_size: 0)
        40.times { h2.get(path) } # 40 MiB asked for, over a 2 MiB budget
        h2.keep_pinging(0.3)
        expect(still_serving?(server)).to be(true)
        expect(h2.ended_within?(limits[:timeout] + 3)).to be(true)
        expect(still_serving?(server)).to be(true)
      ensure
        h2&.close
      end
    end
  end

  it "ends a connection holding even a small answer it never opens a window for, after --timeout" do
    server = serve(app, **limits)
    h2 = H2Connection.new(server.port, settings_initial_window_size: 0)
    h2.get("/ping")
    h2.keep_pinging(0.3)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    expect(h2.ended_within?(limits[:timeout] + 3)).to be(true)
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be >= limits[:timeout] - 0.5 # the stall rule, not sooner
  ensure
    h2&.close
  end

  it "ends a connection whose HEADERS frame trickles in, after --header-timeout" do
    server = serve(app, **limits, timeout: 30) # bytes keep coming: only the head's deadline ends it
    sock = connect(server)
    sock.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n#{HTTP2::Framer.new.generate(type: :settings, stream: 0, payload: [])}")
    block = HTTP2::Header::Compressor.new.encode(":method" => "GET", ":scheme" => "http", ":path" => "/ping", ":authority" => "h")
    headers = HTTP2::Framer.new.generate(type: :headers, stream: 1, flags: %i[end_headers end_stream], payload: block)
    trickle = Thread.new do
      headers.to_s.each_char do |byte| # HTTP2::Buffer is no String in http-2 0.11
        sock.write(byte)
        sleep 0.2
      end
    rescue IOError, SystemCallError
      nil
    end
    read_to_eof(sock, within: limits[:header_timeout] + 3)
    expect(calls).to be_empty # the request never reached the app
  ensure
    trickle&.kill
    sock&.close
  end

  it "resets a request whose body never comes, after --timeout, PINGs notwithstanding" do
    server = serve(app, **limits)
    h2 = H2Connection.new(server.port)
    _, events = h2.post_without_body("/echo")
    h2.keep_pinging(0.3)
    event = pop_within(events, limits[:timeout] + 3)
    expect(event.first).to eq(:close) # reset, not answered
    expect(calls).to be_empty
  ensure
    h2&.close
  end

  it "answers 400 to a field value with outer whitespace (RFC 9113 §8.2.1), without calling the app" do
    server = serve(app)
    h2 = H2Connection.new(server.port)
    _, events = h2.get("/ping", "x-padded" => " value")
    kind, head = pop_within(events)
    expect([kind, head[":status"]]).to eq([:headers, "400"])
    expect(calls).to be_empty
  ensure
    h2&.close
  end
end
