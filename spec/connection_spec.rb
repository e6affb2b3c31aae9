# frozen_string_literal: true

require "spec_helper"

RSpec.describe "connections" do
  let(:echo_path) { ->(env) { [200, { "content-length" => env["PATH_INFO"].bytesize.to_s }, [env["PATH_INFO"]]] } }

  it "keeps HTTP/1.1 connections alive" do
    server = serve(echo_path)
    http(server) do |h|
      expect(h.get("/one").body).to eq("/one")
      socket = h.instance_variable_get(:@socket).io # Net::HTTP reconnects silently if the server closed
      expect(h.get("/two").body).to eq("/two")
      expect(h.instance_variable_get(:@socket).io).to equal(socket)
    end
    answers = on_one_connection(server, ["GET /a HTTP/1.1\r\nHost: h\r\n\r\n", "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"], %r{/[ab]\z})
    expect(answers).to match([end_with("/a"), end_with("/b")])
  end

  it "answers pipelined requests in order" do
    server = serve(echo_path)
    text = raw(server, "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n" \
                       "GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    expect(text.scan(%r{\r\n\r\n(/[abc])})).to eq([["/a"], ["/b"], ["/c"]])
  end

  it "closes HTTP/1.0 connections unless keep-alive is asked for" do
    server = serve(echo_path)
    expect(raw(server, "GET /x HTTP/1.0\r\n\r\n", timeout: 3)).to end_with("/x")
    sock = connect(server)
    sock.write("GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    expect(read_until(sock, %r{/k})).to include("/k")
    sock.write("GET /k2 HTTP/1.0\r\n\r\n")
    expect(read_all(sock)).to end_with("/k2")
  ensure
    sock&.close
  end

  it "says Connection: close to an HTTP/1.0 keep-alive client when the body can only end with the connection" do
    server = serve { |env| [200, {}, env["PATH_INFO"] == "/streamed" ? %w[a b c].each : ["abc"]] }
    streamed = raw_until_close(server, "GET /streamed HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    head, body = streamed.split("\r\n\r\n", 2)
    expect(head).to include("Connection: close")
    expect(head).not_to include("keep-alive", "Content-Length")
    expect(body).to eq("abc")
    sock = connect(server) # an Array body has a length: the connection stays open as asked
    sock.write("GET /array HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    expect(read_until(sock, /abc\z/)).to include("Connection: keep-alive", "Content-Length: 3")
    sock.write("GET /array HTTP/1.0\r\n\r\n")
    expect(read_all(sock)).to end_with("abc")
  ensure
    sock&.close
  end

  it "reads a head that arrives a few bytes at a time" do
    server = serve(echo_path)
    sock = connect(server)
    sock.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
    "GET /drip HTTP/1.1\r\nHost: h\r\nX-Long: #{'v' * 300}\r\n\r\n".scan(/.{1,3}/m).each { |piece| sock.write(piece) }
    expect(read_until(sock, %r{/drip\z})).to start_with("HTTP/1.1 200").and end_with("/drip")
  ensure
    sock&.close
  end

  it "sends an app-supplied Connection: close and closes" do
    server = serve { [200, { "connection" => "close", "content-length" => "2" }, ["hi"]] }
    text = raw(server, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    expect(text).to include("Connection: close").and end_with("hi")
  end

  it "closes a connection after --timeout seconds of inactivity" do
    server = serve(echo_path, timeout: 0.3)
    sock = connect(server)
    sock.write("GET /idle HTTP/1.1\r\nHost: h\r\n\r\n")
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    expect(read_all(sock, timeout: 5)).to end_with("/idle") # returns when the server closes
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be_between(0.2, 3)
  ensure
    sock&.close
  end

  it "closes a connection whose request head is too slow (slowloris), and keeps serving" do
    server = serve(echo_path, header_timeout: 0.3, timeout: 0)
    sock = connect(server)
    sock.write("GET /slow HTTP/1.1\r\nHost: h\r\n")
    read_all(sock, timeout: 5)
    expect(sock.read_nonblock(1, exception: false)).to be_nil
    expect(get(server, "/after").body).to eq("/after")
  ensure
    sock&.close
  end

  # `nc -N`, socat, scripted health checks: the request, then the write side shut. Thin
  # answers an app that answers at once; hyper alone would close first. A complete answer is
  # waited for; one that comes later or streams is not (bridge/half_close.rs).
  it "answers a client that shut its write side after its request" do
    held = Queue.new
    release = Queue.new
    server = serve do |env|
      held << true if env["PATH_INFO"] == "/held"
      pop_within(release) if env["PATH_INFO"] == "/held"
      next [200, {}, File.open(__FILE__)] if env["PATH_INFO"] == "/file" # to_path: tokio reads it

      [200, {}, ["#{env['PATH_INFO']} #{env['rack.input'].read}"]]
    end
    get = ->(path) { "GET #{path} HTTP/1.1\r\nHost: h\r\n\r\n" }
    expect(half_closed(server, get["/a"])).to end_with("/a ")
    expect(half_closed(server, "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody")).to end_with("/p body")
    expect(half_closed(server, get["/1"] + get["/2"]).scan(%r{\r\n\r\n(/\d)})).to eq([["/1"], ["/2"]])
    expect(half_closed(server, get["/file"])).to end_with(File.read(__FILE__))
    held_answer = half_closed(server, get["/held"]) do |waiting| # answered once the app is
      pop_within(held)
      expect(waiting.wait_readable(0.2)).to be_nil # not closed meanwhile
      release << true
      read_to_eof(waiting)
    end
    expect(held_answer).to end_with("/held ")
    # A body cut short by the shut write side is no request: closed without an answer.
    expect(half_closed(server, "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nbody")).to eq("")
  ensure
    release << true
  end

  it "lets a half-closed client go at once when the answer comes later or streams" do
    events = Queue.new
    go = Queue.new
    server = serve(mode: :evented) do |env|
      next [-1, {}, []].tap { env["async.close"].callback { events << :async_close } } if env["PATH_INFO"] == "/poll"

      body = Enumerator.new do |out|
        out << "first"
        pop_within(go) # held here until the example ends: only the close can end the read below
        out << "second"
      end
      [200, {}, body]
    end
    poll = half_closed(server, "GET /poll HTTP/1.1\r\nHost: h\r\n\r\n") do |sock|
      expect(pop_within(events, 2)).to eq(:async_close)
      read_to_eof(sock)
    end
    expect(poll).to eq("")
    # A Live stream's client leaving: closed while the app still waits (it is let go only
    # after the example), so the close is the server's, not the stream's end.
    stream = half_closed(server, "GET /stream HTTP/1.1\r\nHost: h\r\n\r\n") { |sock| read_to_eof(sock, within: 2) }
    expect(stream).not_to include("second")
  ensure
    go << true
  end

  it "serves on a Unix socket" do
    path = File.join(Dir.tmpdir, "lunar-spec-#{Process.pid}.sock")
    server = serve(echo_path, binds: ["unix://#{path}"])
    expect(server.addresses).to eq(["unix://#{path}"])
    sock = UNIXSocket.new(path)
    sock.write("GET /unix HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    expect(read_all(sock)).to end_with("/unix")
    server.halt.wait
    expect(File.exist?(path)).to be(false)
  ensure
    sock&.close
  end
end
