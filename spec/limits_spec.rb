# frozen_string_literal: true

require "spec_helper"

RSpec.describe "limits and bad input" do
  let(:calls) { Queue.new }
  let(:app) do
    lambda { |env|
      calls << env["PATH_INFO"]
      [200, { "content-length" => "2" }, ["ok"]]
    }
  end

  it "answers a malformed request 400 and keeps serving" do
    server = serve(app)
    expect(status_of(raw(server, "THIS IS NOT HTTP\r\n\r\n"))).to eq("400")
    expect(status_of(raw(server, "GET / HTTP/1.1\r\nBad Header Line\r\n\r\n"))).to eq("400")
    expect(get(server, "/fine").body).to eq("ok")
  end

  it "answers 431 to a request head over --max-header-size" do
    server = serve(app, max_header_size: 8192)
    text = raw(server, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: #{'a' * 20_000}\r\n\r\n")
    expect(status_of(text)).to eq("431")
    expect(get(server, "/fine").body).to eq("ok")
  end

  it "answers 431 to a head that never ends a line, instead of waiting for one" do
    server = serve(app, max_header_size: 8192)
    expect(status_of(raw(server, "GET /#{'a' * 9000}"))).to eq("431")
    expect(get(server, "/fine").body).to eq("ok")
  end

  it "forgets a request whose client leaves halfway through the body, and keeps serving" do
    server = serve(app)
    sock = connect(server)
    sock.write("POST /half HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n#{'x' * 40}")
    sock.close
    eventually { server.live_connections.zero? }
    expect(get(server, "/fine").body).to eq("ok")
    expect(calls.size).to eq(1) # only /fine reached the app
  end

  it "answers 413 to a body over --max-body, declared or chunked, without calling the app" do
    server = serve(app, max_body: 1000)
    declared = raw(server, "POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n#{'x' * 5000}")
    expect(status_of(declared)).to eq("413")
    chunk = "x" * 800
    chunked = raw(server, "POST /big HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" \
                          "#{chunk.bytesize.to_s(16)}\r\n#{chunk}\r\n#{chunk.bytesize.to_s(16)}\r\n#{chunk}\r\n0\r\n\r\n")
    expect(status_of(chunked)).to eq("413")
    expect(get(server, "/fine").body).to eq("ok")
    expect(calls.size).to eq(1)
  end

  it "serves Content-Length + Transfer-Encoding as chunked and closes, so nothing can be smuggled" do
    seen = []
    server = serve(recording_app(seen))
    text = raw(server, "POST /smuggle HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" \
                       "0\r\n\r\nGET /inner HTTP/1.1\r\nHost: h\r\n\r\n")
    # RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, and the server MUST close
    # the connection after responding (hyper's choice; a 400 is the other one allowed).
    expect(text.scan(%r{HTTP/1\.1 \d{3}})).to eq(["HTTP/1.1 200"])
    expect(text).to include("Connection: close")
    # The body read, not the Content-Length sent beside the chunked coding.
    expect(seen.map { |env| [env["PATH_INFO"], env["CONTENT_LENGTH"], env["lunar.test.body"]] }).to eq([["/smuggle", "0", ""]])
    expect(get(server, "/fine").body).to eq("ok")
  end

  it "answers 400 to two Host headers and to Transfer-Encoding on HTTP/1.0, and closes" do
    seen = []
    server = serve(recording_app(seen))
    two_hosts = raw(server, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n")
    old_te = raw(server, "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n" \
                         "3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n")
    [two_hosts, old_te].each do |text| # RFC 9112 §3.2 and §6.1
      expect(text.scan(%r{HTTP/1\.1 \d{3}})).to eq(["HTTP/1.1 400"])
      expect(text).to include("Connection: close")
    end
    expect(seen).to be_empty
    expect(get(server, "/fine").body).to eq("ok")
  end

  it "answers 400 to a malformed chunked body and to disagreeing Content-Lengths, and closes on a body cut short" do
    seen = []
    server = serve(recording_app(seen))
    post = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    # A size that is no hex number, data longer than its size, a size past 64 bits: hyper
    # stops reading, Lunar answers (as Puma does) and closes; the app is never called.
    ["zz\r\nabc\r\n0\r\n\r\n", "3\r\nabcXX\r\n0\r\n\r\n", "ffffffffffffffffff\r\nabc\r\n0\r\n\r\n"].each do |body|
      answer = raw_until_close(server, post + body)
      expect([status_of(answer), answer[/^connection: .*$/i]]).to eq(["400", "Connection: close\r"]), body.inspect
    end
    two_lengths = raw(server, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
    expect(status_of(two_lengths)).to eq("400")
    # A client done sending before its body ended is owed no 400: closed without an answer.
    expect(half_closed(server, "#{post}5\r\nab")).to eq("")
    expect(seen).to be_empty
    expect(get(server, "/fine").body).to eq("ok")
  end

  it "answers 503 at once when the dispatch queue is full" do
    release = Queue.new
    started = Queue.new
    # An I/O thread reads the next requests while the one Ruby thread is held (inline, with
    # no I/O thread, nothing would be read meanwhile: inline_spec.rb).
    server = serve(holding_app(started, release, path: "/block"), threads: 1, queue: 1, io_threads: 1)
    blocker = Thread.new { get(server, "/block") }
    pop_within(started)
    queued = Thread.new { get(server, "/queued") } # fills the one queue slot
    eventually { server.instance_variable_get(:@native).queue_length == 1 }
    expect(get(server, "/overflow").code).to eq("503")
    release << true
    expect([blocker.value.code, queued.value.code]).to eq(%w[200 200])
  end
end

RSpec.describe "connection limits" do
  it "refuses connections past --max-conns with a 503 and keeps serving the ones it holds" do
    server = serve(max_conns: 2) { [200, { "content-length" => "2" }, ["ok"]] }
    held = Array.new(2) { connect(server) }
    held.each { |s| s.write("GET / HTTP/1.1\r\nHost: h\r\n\r\n") }
    expect(held.map { |s| read_until(s, /ok\z/) }).to all(end_with("ok")) # both accepted and live
    refused = raw(server, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    expect(refused).to start_with("HTTP/1.1 503").and include("Server at capacity")
    held.first.write("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    expect(read_all(held.first)).to end_with("ok")
    eventually { server.live_connections == 1 }
    expect(get(server).body).to eq("ok")
  ensure
    held&.each(&:close)
  end

  it "counts hijacked sockets against --max-conns until the app closes them, handed whole or relayed" do
    held = Queue.new
    server = serve(max_conns: 2) do |env|
      io = env["rack.hijack"].call
      io.write("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nheld")
      env["PATH_INFO"] == "/hold" ? held << io : io.close
      [200, {}, []]
    end
    whole = connect(server)
    whole.write("GET /hold HTTP/1.1\r\nHost: h\r\n\r\n") # nothing past the head: the socket itself
    relayed = connect(server)
    relayed.write("GET /hold HTTP/1.1\r\nHost: h\r\n\r\nearly") # bytes past the head: a relayed pair
    expect([read_until(whole, /held\z/), read_until(relayed, /held\z/)]).to all(end_with("held"))
    ios = [pop_within(held), pop_within(held)]
    eventually { server.stats[:hijacked_sockets] == 1 && server.live_connections == 1 }
    expect(raw(server, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")).to start_with("HTTP/1.1 503")
    ios.each(&:close)
    eventually { server.stats[:hijacked_sockets].zero? && server.live_connections.zero? }
    expect(raw(server, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")).to end_with("held")
  ensure
    [whole, relayed].compact.each(&:close)
  end

  it "raises its soft open-file limit to the hard limit and says so at boot" do
    _, hard = Process.getrlimit(:NOFILE)
    child = spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:0", fixture("hello.ru")), spawn: { rlimit_nofile: [256, hard] })
    line = child.wait_for(/up to (\d+) connections \((open files[^)]*)\)/)
    expect(line[2]).to eq("open files raised 256 → #{hard}")
    expect(Integer(line[1])).to eq(hard - 100)
  end
end
