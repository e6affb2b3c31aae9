# frozen_string_literal: true

require "spec_helper"
require "faye/websocket"
require "websocket/driver"
require "open3"

# rack.hijack (full and partial) on hyper's upgrade, with the real libraries that need it:
# faye-websocket (evented, and threaded with EventMachine) and websocket-driver used
# directly (threaded, no EventMachine). Clients speak WebSocket over plain TCP sockets.
RSpec.describe "rack.hijack and WebSockets" do
  # An app that takes the connection, writes what the block makes of it, and closes it.
  def serve_hijacker(&answer)
    serve do |env|
      io = env["rack.hijack"].call
      io.write(answer.call(io))
      io.close
      [200, {}, []]
    end
  end

  def faye_chat(clients = [])
    lambda do |env|
      next [200, { "content-length" => "2" }, ["ok"]] unless Faye::WebSocket.websocket?(env)

      ws = Faye::WebSocket.new(env)
      ws.on(:open) { clients << ws }
      ws.on(:message) do |event|
        if event.data.start_with?("all:")
          clients.each { |c| c.send(event.data.delete_prefix("all:")) }
        else
          ws.send("echo: #{event.data}")
        end
      end
      ws.on(:close) { clients.delete(ws) }
      ws.rack_response
    end
  end

  { evented: {}, "threaded with EventMachine": { mode: :threaded } }.each do |label, options|
    it "runs faye-websocket: echo, and a broadcast to every client (#{label})" do
      server = serve(faye_chat, mode: :evented, **options)
      clients = Array.new(3) { WebSocketClient.new(server.port) }
      clients.first.send_frame("hello")
      expect(clients.first.text).to eq("echo: hello")
      clients.last.send_frame("all:to everyone")
      expect(clients.map(&:text)).to eq(["to everyone"] * 3)
      expect(get(server).body).to eq("ok") # plain HTTP on the same server
    ensure
      clients&.each(&:close)
    end
  end

  it "hands websocket-driver a real IO in threaded mode without EventMachine, with no byte lost" do
    events = Queue.new
    app = lambda do |env|
      events << [env["rack.hijack?"], env["rack.multithread"]]
      io = env["rack.hijack"].call
      events << [io.is_a?(IO), env["rack.hijack_io"].equal?(io)]
      driver = WebSocket::Driver.rack(HijackedSocket.new(env, io))
      driver.on(:message) { |e| driver.text("echo: #{e.data}") }
      driver.start
      Thread.new do
        loop { driver.parse(io.readpartial(4096)) }
      rescue IOError # EOFError too
        io.close unless io.closed?
      end
      [-1, {}, []] # ignored: the connection is the app's
    end
    server = serve(app, mode: :threaded, async: false, timeout: 0.3)
    client = WebSocketClient.new(server.port)
    expect(pop_within(events)).to eq([true, true])
    expect(pop_within(events)).to eq([true, true])
    sleep 0.6 # longer than --timeout: a hijacked connection is no longer Lunar's to time out
    client.send_frame("still here")
    expect(client.text).to eq("echo: still here")
  ensure
    client&.close
  end

  it "delivers bytes the client sent right after the request head through the hijacked IO" do
    got = Queue.new
    server = serve(mode: :threaded) do |env|
      io = env["rack.hijack"].call
      Thread.new { got << io.read(10) }
      [-1, {}, []]
    end
    sock = connect(server)
    sock.write("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\nEARLY DATA")
    expect(pop_within(got)).to eq("EARLY DATA")
  ensure
    sock&.close
  end

  it "hijacks a TLS connection too: the app's IO speaks plain bytes, the client TLS" do
    server = serve(binds: [TestCertificate.bind], mode: :threaded) do |env|
      io = env["rack.hijack"].call
      Thread.new do
        io.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\n")
        io.write("echo: #{io.gets}")
        io.close
      end
      [-1, {}, []]
    end
    tls = OpenSSL::SSL::SSLSocket.new(connect(server), OpenSSL::SSL::SSLContext.new.tap { |c| c.verify_mode = OpenSSL::SSL::VERIFY_NONE })
    tls.sync_close = true
    tls.connect
    tls.write("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\n")
    expect(tls.gets).to start_with("HTTP/1.1 101")
    tls.gets("\r\n\r\n")
    tls.write("over TLS\n")
    expect(tls.gets).to eq("echo: over TLS\n")
    expect(tls.read).to eq("") # the app closed: so does the client's connection
  ensure
    tls&.close
  end

  it "writes the head, then hands the IO to a rack.hijack response header (partial hijack)" do
    server = serve do |_env|
      echo = lambda do |io|
        Thread.new do
          io.write("pong: #{io.gets}")
          io.close
        end
      end
      [101, { "upgrade" => "echo", "connection" => "Upgrade", "rack.hijack" => echo }, []]
    end
    text = raw(server, "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nping\n")
    expect(text).to start_with("HTTP/1.1 101 Switching Protocols\r\n").and include("Upgrade: echo")
    expect(text).not_to match(/hijack/i) # the callable never goes out as a header
    expect(text).to end_with("\r\n\r\npong: ping\n")
  end

  it "passes Rack::Lint with a full hijack" do
    server = serve(Rack::Lint.new(lambda do |env|
      io = env["rack.hijack"].call
      io.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\nhijacked")
      io.close
      [200, {}, []]
    end))
    text = raw(server, "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\n")
    expect(text).to eq("HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\nhijacked")
  end

  it "offers rack.hijack on every HTTP/1 request, and none over HTTP/2" do
    seen = Queue.new
    server = serve do |env|
      seen << [env["SERVER_PROTOCOL"], env["rack.hijack?"], env["rack.hijack"].respond_to?(:call)]
      [200, { "content-length" => "2" }, ["ok"]]
    end
    get(server)
    expect(pop_within(seen)).to eq(["HTTP/1.1", true, true])
    raw(server, "GET / HTTP/1.0\r\n\r\n")
    expect(pop_within(seen)).to eq(["HTTP/1.0", true, true])
    out, = Open3.capture2("curl", "-s", "--http2-prior-knowledge", "http://127.0.0.1:#{server.port}/")
    expect(out).to eq("ok")
    expect(pop_within(seen)).to eq(["HTTP/2", false, false])
  end

  # What message_bus does on Puma: take an ordinary POST (its long-poll) and answer on the socket.
  ordinary = lambda do |env|
    io = env["rack.hijack"].call
    io.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n" \
             "#{env['REQUEST_METHOD']} #{env['PATH_INFO']} #{env['rack.input'].read}")
    io.close
    [200, {}, []]
  end
  { "threaded" => { mode: :threaded }, "evented" => { mode: :evented } }.each do |label, options|
    it "hands over an ordinary GET and POST (no Upgrade header), #{label}" do
      server = serve(ordinary, **options)
      response = get(server, "/poll")
      expect([response.code, response.body]).to eq(["200", "GET /poll "])
      response = http(server) { |h| h.post("/message-bus/poll", "__seq=1") }
      expect([response.code, response.body]).to eq(["200", "POST /message-bus/poll __seq=1"])
    end
  end

  it "hands over on a Unix socket and over TLS as well" do
    path = File.join(scratch_dir("lunar-hijack"), "s.sock")
    server = serve(ordinary, binds: ["unix://#{path}", TestCertificate.bind])
    UNIXSocket.open(path) do |sock|
      sock.write("GET /unix HTTP/1.1\r\nHost: h\r\n\r\n")
      expect(read_to_eof(sock)).to end_with("\r\n\r\nGET /unix ")
    end
    tls_port = server.addresses.find { |a| a.start_with?("ssl://") }[/:(\d+)\z/, 1]
    out, = Open3.capture2("curl", "-sk", "--http1.1", "https://127.0.0.1:#{tls_port}/tls")
    expect(out).to eq("GET /tls ")
  end

  it "hands over the client's own socket where nothing sits in between: one descriptor, no relay" do
    seen = Queue.new
    server = serve do |env|
      io = env["rack.hijack"].call
      seen << [io.class, io.remote_address.ip_port]
      io.write("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nmine")
      io.close
      [200, {}, []]
    end
    sock = connect(server)
    sock.write("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    expect(read_to_eof(sock)).to end_with("\r\n\r\nmine")
    expect(pop_within(seen)).to eq([TCPSocket, sock.local_address.ip_port]) # the very connection
  ensure
    sock&.close
  end

  it "gives the app what the client sent past an ordinary request (a pipelined one) before anything else" do
    server = serve_hijacker { |io| "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nnext: #{io.gets.chomp}" }
    text = raw(server, "GET /first HTTP/1.1\r\nHost: h\r\n\r\nGET /second HTTP/1.1\r\nHost: h\r\n\r\n")
    expect(text).to end_with("\r\n\r\nnext: GET /second HTTP/1.1")
  end

  # The app answers and closes without reading the pipelined request: writing that request
  # to it then fails, and the answer it left queued must still reach the client (it was
  # lost about one time in eight when the close came before the relay's first write).
  it "delivers a hijacked answer written and closed at once, though a pipelined request stays unread" do
    server = serve_hijacker { "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nfull" }
    answers = Array.new(40) { raw(server, "GET /full HTTP/1.1\r\nHost: h\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n") }
    expect(answers.reject { |text| text.end_with?("\r\n\r\nfull") }).to eq([])
  end

  it "writes the head of an ordinary response, then hands the stream to its rack.hijack header (partial hijack)" do
    server = serve do |env|
      stream = lambda do |io|
        io.write("written by the app after #{env['PATH_INFO']}")
        io.close
      end
      [200, { "content-type" => "text/plain", "x-app" => "1", "rack.hijack" => stream }, []]
    end
    text = raw(server, "GET /partial HTTP/1.1\r\nHost: h\r\n\r\n")
    head, body = text.split("\r\n\r\n", 2)
    expect(head).to start_with("HTTP/1.0 200 OK\r\n").and include("Connection: close", "X-App: 1")
    expect(head).not_to match(/content-length|transfer-encoding|hijack/i) # unframed: the close ends the body
    expect(body).to eq("written by the app after /partial")
  end

  it "answers a partial hijack whose head declares its own framing with a 500 that says why" do
    server = serve { |_env| [200, { "content-length" => "5", "rack.hijack" => ->(io) { io.close } }, []] }
    expect(get(server).code).to eq("500")
  end
end

# An app written the way message_bus's middleware is: each long-poll is an ordinary POST
# whose connection it hijacks; on a publish it writes a chunked reply to every held one
# over time, then ends and closes it.
RSpec.describe "a message_bus-style app on hijacked ordinary POSTs" do
  clients = 500

  let(:app) do
    held = Queue.new
    lambda do |env|
      if env["PATH_INFO"] == "/publish"
        message = env["rack.input"].read
        clients.times do
          io = held.pop
          io.write("3\r\n[1,\r\n") # a first chunk, then the rest a moment later
          io.write("#{(message.bytesize + 1).to_s(16)}\r\n#{message}]\r\n0\r\n\r\n")
          io.close
        end
        [200, { "content-type" => "text/plain", "content-length" => "2" }, ["ok"]]
      else
        io = env["rack.hijack"].call
        io.write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        held << io
        [418, {}, []] # ignored: the connection is the app's
      end
    end
  end

  { "threaded" => { mode: :threaded }, "--async" => { mode: :threaded, async: true }, "evented" => { mode: :evented } }.each do |label, options|
    it "holds #{clients} polls and delivers one publish to every one (#{label})" do
      server = serve(app, queue: clients + 10, **options)
      polls = Array.new(clients) do
        connect(server).tap { |s| s.write("POST /message-bus/poll HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n\r\n__seq=1") }
      end
      polls.each { |s| read_until(s, /\r\n\r\n/) } # every head out: every poll is held
      expect(http(server) { |h| h.post("/publish", "hello") }.body).to eq("ok")
      bodies = polls.map { |s| read_to_eof(s) }
      expect(bodies.uniq).to eq(["3\r\n[1,\r\n6\r\nhello]\r\n0\r\n\r\n"])
    ensure
      polls&.each(&:close)
    end
  end
end
