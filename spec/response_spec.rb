# frozen_string_literal: true

require "spec_helper"
require "tempfile"
require "time"

RSpec.describe "responses" do
  def headers_of(text)
    text.split("\r\n\r\n", 2).first.split("\r\n").drop(1)
  end

  it "writes Array values and newline-separated values as one line each" do
    server = serve { [200, { "set-cookie" => ["a=1", "b=2"], "x-multi" => "c\nd", "content-length" => "0" }, []] }
    lines = headers_of(raw(server, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
    expect(lines).to include("Set-Cookie: a=1", "Set-Cookie: b=2", "X-Multi: c", "X-Multi: d")
  end

  it "never writes CR/LF/NUL-carrying values, rack.* keys or status" do
    server = serve do
      [200, { "x-evil" => "a\r\nInjected: yes", "x-nul" => "a\0b", "rack.hijack" => "x", "status" => "200",
              "x-good" => "fine", "content-length" => "0" }, []]
    end
    text = raw(server, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    expect(text).not_to match(/Injected|X-Nul|Rack|^Status/i)
    expect(text).to include("X-Good: fine")
  end

  it "accepts a String status and Rack 2 headers as an Array of pairs", rack: 2 do
    server = serve { ["201", [%w[x-a 1], %w[content-length 2]], ["hi"]] }
    response = get(server)
    expect([response.code, response["x-a"], response.body]).to eq(%w[201 1 hi])
  end

  it "gives a status with no standard name Puma's reason, not hyper's <none>" do
    server = serve { |env| [Integer(env["PATH_INFO"][1..]), { "content-length" => "0" }, []] }
    expect(raw(server, "GET /499 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")).to start_with("HTTP/1.1 499 CUSTOM\r\n")
    expect(raw(server, "GET /404 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")).to start_with("HTTP/1.1 404 Not Found\r\n")
  end

  it "sends a to_ary body with a Content-Length computed by the server" do
    server = serve { [200, {}, %w[ab cd]] }
    response = get(server)
    expect([response["content-length"], response.body]).to eq(%w[4 abcd])
  end

  # A large frozen String answered whole is lent to the connection, not copied
  # (ext/lunar/src/ruby/lent.rs): it must stay alive and in place until the client has it all,
  # though the app let go of it and GC runs and compacts meanwhile.
  it "sends a large frozen to_ary body intact when GC compacts before the client reads it" do
    twelve_mib = -> { Array.new(192) { |i| format("%07d\n", i) * 8192 }.join }
    expected = twelve_mib.call
    bodies = Queue.new << twelve_mib.call.freeze # its own buffer, held by nothing once answered
    server = serve(connection_buffer: 16 * (1024**2)) { [200, { "content-type" => "text/plain" }, [bodies.pop]] }
    sock = Socket.new(:INET, :STREAM)
    sock.setsockopt(Socket::SOL_SOCKET, Socket::SO_RCVBUF, 16_384)
    sock.connect(Socket.sockaddr_in(server.port, "127.0.0.1"))
    sock.write("GET / HTTP/1.0\r\n\r\n")
    head = read_until(sock, /\r\n\r\n/) # answered: megabytes wait in the server, unread
    GC.start
    GC.compact
    text = head + read_all(sock)
    expect(text).to start_with("HTTP/1.0 200")
    got = text.split("\r\n\r\n", 2).last
    expect(got.bytesize).to eq(expected.bytesize)
    expect(got == expected).to be(true)
  ensure
    sock&.close
  end

  # ... and let go of once the client has it: at the next GC, even when no request follows
  # (a Ruby thread returns a loan only when it next lends or takes a request). Asked of the
  # registry, not of the String's own collection: Ruby scans a parked worker's stack
  # conservatively, and a stale reference there may keep the String whatever Lunar does.
  # The body is larger than loopback's socket buffers and the client stops after the head,
  # so it is still being sent when the worker goes back to wait (it holds the GVL until it
  # parks, and this thread needs it to look): a body written whole before the worker's
  # next look would be returned by that look, not by the GC.
  it "lets a lent body go at the next GC once it is sent, in a server gone idle" do
    size = 32 * (1024**2)
    server = serve(threads: 1) { [200, { "content-length" => size.to_s }, [("x" * size).freeze]] }
    GC.start
    before = Lunar::Native.strings_on_loan
    sock = connect(server)
    sock.write("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    read_until(sock, /\r\n\r\n/)
    expect(Lunar::Native.strings_on_loan).to eq(before + 1) # lent, not copied
    GC.disable
    expect(read_to_eof(sock).bytesize).to be > size - 65_536 # the rest (what read_until took past the head aside)
    expect(Lunar::Native.strings_on_loan).to eq(before + 1) # sent, and no request since: nobody looked
    GC.enable
    eventually do
      GC.start
      Lunar::Native.strings_on_loan == before
    end
  ensure
    GC.enable
    sock&.close
  end

  it "serves a to_path body from the file" do
    file = Tempfile.new("lunar")
    file.write("from a file\n" * 10_000)
    file.flush
    body = Struct.new(:to_path) { def each = raise("each must not be called") }.new(file.path)
    server = serve { [200, { "content-type" => "text/plain" }, body] }
    response = get(server)
    expect(response["content-length"]).to eq((12 * 10_000).to_s)
    expect(response.body).to eq("from a file\n" * 10_000)
  ensure
    file&.close!
  end

  it "sends no body for HEAD, 204 and 304" do
    server = serve { |env| [env["PATH_INFO"][1..].to_i, { "content-type" => "text/plain" }, ["body!"]] }
    head = raw(server, "HEAD /200 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    expect(head).to start_with("HTTP/1.1 200").and end_with("\r\n\r\n")
    expect(head).to include("Content-Length: 5")
    expect(raw(server, "GET /204 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")).to end_with("\r\n\r\n")
    expect(raw(server, "GET /304 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")).to end_with("\r\n\r\n")
  end

  it "always calls body.close, also when the app's body raises" do
    closed = Queue.new
    body_class = Class.new do
      define_method(:initialize) { |fail| @fail = fail }
      define_method(:each) do |&b|
        b.call("x")
        raise "boom" if @fail
      end
      define_method(:close) { closed << (@fail ? :failed : :ok) }
    end
    server = serve { |env| [200, {}, body_class.new(env["PATH_INFO"] == "/fail")] }
    expect(get(server).body).to eq("x")
    expect(pop_within(closed)).to eq(:ok)
    expect { get(server, "/fail") }.to raise_error(StandardError)
    expect(pop_within(closed)).to eq(:failed)
    expect(get(server).code).to eq("200")
  end

  it "runs rack.response_finished callables in reverse order with (env, status, headers, error)" do
    calls = Queue.new
    server = serve do |env|
      env["rack.response_finished"] << ->(e, s, _h, err) { calls << [:first, s, err&.message, e["PATH_INFO"]] }
      env["rack.response_finished"] << ->(_e, s, _h, _err) { calls << [:second, s] }
      raise "kaput" if env["PATH_INFO"] == "/error"

      [200, {}, ["ok"]]
    end
    get(server, "/fine")
    expect([pop_within(calls), pop_within(calls)]).to eq([[:second, 200], [:first, 200, nil, "/fine"]])
    expect(get(server, "/error").code).to eq("500")
    expect([pop_within(calls), pop_within(calls)]).to eq([[:second, nil], [:first, nil, "kaput", "/error"]])
  end

  # Puma's and Unicorn's hook, pushed to unguarded by apps written for them (Pact Broker's
  # webhooks): callables with no arguments, in order, once the response is out.
  it "runs rack.after_reply callables in order once the response is out, before rack.response_finished" do
    calls = Queue.new
    gate = Queue.new
    server = serve do |env|
      env["rack.after_reply"] << -> { calls << [:first, gate.pop] }
      env["rack.after_reply"] << -> { raise "kaput" } # logged; the next still runs
      env["rack.after_reply"] << -> { calls << [:second] }
      env["rack.response_finished"] << ->(*) { calls << [:finished] }
      env["rack.errors"] = StringIO.new
      [200, {}, ["ok"]]
    end
    expect(get(server).body).to eq("ok") # while the first callable still waits
    gate << :after_the_response
    expect(Array.new(3) { pop_within(calls) }).to eq([%i[first after_the_response], [:second], [:finished]])
    errors = StringIO.new
    replaced = serve do |env|
      env["rack.errors"] = errors
      env["rack.after_reply"] = "no callables" # an app's own value: not Puma's Array, left alone
      [200, {}, ["ok"]]
    end
    expect(Array.new(2) { get(replaced).body }).to eq(%w[ok ok])
    expect(errors.string).to be_empty
  end

  it "passes an app-set Transfer-Encoding through without chunking twice (Rack::Chunked)" do
    pre_chunked = Struct.new(:parts) { def each(&) = parts.each(&) }.new(["5\r\nhello\r\n", "0\r\n\r\n"])
    server = serve { [200, { "transfer-encoding" => "chunked" }, pre_chunked] }
    answers = on_one_connection(server, ["GET /a HTTP/1.1\r\nHost: h\r\n\r\n", "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"], /0\r\n\r\n\z/)
    answers.each do |text|
      head, body = text.split("\r\n\r\n", 2)
      expect(head.scan(/Transfer-Encoding/i).size).to eq(1)
      expect(body).to eq("5\r\nhello\r\n0\r\n\r\n")
    end
  end

  # hyper drops what it has not written when a body errs; the error waits for it to write.
  it "sends the head of a body marked chunked that is not chunk-encoded, then closes" do
    server = serve { |env| [200, { "transfer-encoding" => "chunked", "x-app" => "1" }, [env["PATH_INFO"] == "/ok" ? "0\r\n\r\n" : "hello"]] }
    text = raw(server, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", timeout: 10) # returns at the server's close
    expect(text).to start_with("HTTP/1.1 200").and include("X-App: 1")
    expect(text).not_to include("hello")
    expect(get(server, "/ok").code).to eq("200") # and the server goes on
  end

  it "never sends more than a streamed body's own Content-Length, and closes when it falls short" do
    body = ->(parts) { Struct.new(:parts) { def each(&) = parts.each(&) }.new(parts) }
    server = serve do |env|
      parts = env["PATH_INFO"] == "/short" ? ["abc"] : %w[abcdefghij extra]
      [200, { "content-length" => "10" }, body.call(parts)]
    end
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    short = raw(server, "GET /short HTTP/1.1\r\nHost: h\r\n\r\n", timeout: 10) # returns at the server's close
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 5 # closed, not timed out
    # Closed before the declared length, so a client sees it is incomplete; but only after
    # the head and every byte the app wrote went out (hyper drops what it has not flushed
    # when it closes: the stream lets it flush first).
    head, got = short.split("\r\n\r\n", 2)
    expect(head).to start_with("HTTP/1.1 200").and(include("Content-Length: 10"))
    expect(head).not_to include("Transfer-Encoding")
    expect(got).to eq("abc")
    # Too long: hyper writes exactly the declared bytes and drops the rest, so the connection
    # stays correctly framed and serves the next request.
    answers = on_one_connection(server, ["GET /long HTTP/1.1\r\nHost: h\r\n\r\n"] * 2, /abcdefghij\z/)
    answers.each { |text| expect(text).to start_with("HTTP/1.1 200").and end_with("\r\n\r\nabcdefghij") }
  end

  it "writes a Date header and title-cased names" do
    server = serve { [200, { "x-request-id" => "1", "content-length" => "0" }, []] }
    lines = headers_of(raw(server, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
    expect(lines).to include("X-Request-Id: 1", "Content-Length: 0")
    expect(Time.httpdate(lines.find { |l| l.start_with?("Date: ") }.delete_prefix("Date: "))).to be_within(5).of(Time.now)
  end

  it "closes the connection without a byte when the app returns nil" do
    server = serve { nil }
    expect(raw(server, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")).to eq("")
  end
end
