# frozen_string_literal: true

require "spec_helper"
require "open3"
require "json"
require "http/2"

# HTTP/2 (h2c with prior knowledge, h2 by ALPN over TLS) and TLS, spoken by real clients:
# curl, and ruby-http-2 where a spec needs to reset one stream of a live connection.
RSpec.describe "HTTP/2 and TLS" do
  let(:env_keys) { %w[SERVER_PROTOCOL HTTP_VERSION rack.url_scheme HTTPS HTTP_HOST SERVER_NAME SERVER_PORT] }

  let(:events) { Queue.new }
  let(:env_app) do
    keys = env_keys
    lambda do |env|
      body = JSON.generate(keys.to_h { |k| [k, env[k]] }.merge("body" => env["rack.input"].read))
      [200, { "content-type" => "application/json" }, [body]]
    end
  end

  def certificate = TestCertificate.files
  def ssl_bind = TestCertificate.bind

  # curl's body and the HTTP version it spoke.
  def curl(*args)
    out, err, status = Open3.capture3("curl", "-sS", "--max-time", "10", "-w", "\n%{http_version}", *args) # rubocop:disable Style/FormatStringToken
    raise "curl failed: #{err}" unless status.success?

    body, _, version = out.rpartition("\n")
    [body, version]
  end

  def curl_json(*args)
    body, version = curl(*args)
    [JSON.parse(body), version]
  end

  it "speaks h2c with prior knowledge and HTTP/1.1 on the same plain port" do
    server = serve(env_app)
    url = "http://127.0.0.1:#{server.port}/x?y=1"
    env, version = curl_json("--http2-prior-knowledge", "--data-binary", "posted over h2", url)
    expect(version).to eq("2")
    expect(env).to include("SERVER_PROTOCOL" => "HTTP/2", "HTTP_VERSION" => "HTTP/2", "rack.url_scheme" => "http",
                           "HTTP_HOST" => "127.0.0.1:#{server.port}", "SERVER_PORT" => server.port.to_s,
                           "body" => "posted over h2")
    env, version = curl_json("--http1.1", url)
    expect([version, env["SERVER_PROTOCOL"]]).to eq(["1.1", "HTTP/1.1"])
  end

  # Browsers split their cookies into one field each over HTTP/2 (RFC 9113 §8.2.3); Rack
  # reads HTTP_COOKIE as "; "-separated pairs, so that is how the fields must be joined.
  it "joins cookies sent as separate fields with \"; \", so Rack sees every one" do
    require "rack/request"
    server = serve { |env| [200, {}, [JSON.generate([env["HTTP_COOKIE"], Rack::Request.new(env).cookies, env["HTTP_X_A"]])]] }
    url = "http://127.0.0.1:#{server.port}/"
    two = ["-H", "Cookie: a=1", "-H", "Cookie: b=2", "-H", "X-A: 1", "-H", "X-A: 2"]
    %w[--http2-prior-knowledge --http1.1].each do |protocol|
      seen, = curl_json(protocol, *two, url)
      expect(seen).to eq(["a=1; b=2", { "a" => "1", "b" => "2" }, "1, 2"]), protocol
    end
  end

  it "speaks h2 by ALPN and HTTP/1.1 over TLS on an ssl:// bind, as https" do
    server = serve(env_app, binds: [ssl_bind])
    expect(server.addresses).to eq(["ssl://127.0.0.1:#{server.port}"])
    url = "https://127.0.0.1:#{server.port}/"
    env, version = curl_json("-k", "--http2", url)
    expect(version).to eq("2")
    expect(env).to include("SERVER_PROTOCOL" => "HTTP/2", "rack.url_scheme" => "https", "HTTPS" => "on")
    env, version = curl_json("-k", "--http1.1", "-H", "Host: example.com", url)
    expect(version).to eq("1.1")
    expect(env).to include("rack.url_scheme" => "https", "HTTPS" => "on", "SERVER_NAME" => "example.com", "SERVER_PORT" => "443")
    # a plain-text client on the TLS port gets nowhere, and the server carries on
    expect(raw_until_close(server, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")).not_to include("200 OK")
    expect(curl_json("-k", url).first["rack.url_scheme"]).to eq("https")
  end

  # Large frozen chunks are lent, not copied (ruby/lent.rs); on HTTP/2 they go to hyper in
  # slices, over TLS through rustls: every byte must arrive, in order, each way.
  it "streams large frozen chunks intact over h2c, h2 over TLS and HTTP/1.1 over TLS" do
    chunk = ->(i) { format("%07d\n", i) * 8192 } # 64 KiB, different for each i
    body = Object.new
    body.define_singleton_method(:each) { |&blk| 32.times { |i| blk.call(chunk.call(i).freeze) } }
    expected = 32.times.map(&chunk).join
    plain = serve { [200, { "content-type" => "text/plain" }, body] }
    tls = serve(binds: [ssl_bind]) { [200, { "content-type" => "text/plain" }, body] }
    [[plain, "http", ["--http2-prior-knowledge"], "2"], [tls, "https", ["-k", "--http2"], "2"], [tls, "https", ["-k", "--http1.1"], "1.1"]]
      .each do |server, scheme, flags, want|
        got, version = curl(*flags, "#{scheme}://127.0.0.1:#{server.port}/")
        expect(version).to eq(want)
        expect(got == expected).to be(true), "#{scheme} #{want}: #{got.bytesize} bytes, not the #{expected.bytesize} sent"
      end
  end

  it "answers an async response over HTTP/2 in evented mode" do
    server = serve(mode: :evented) do |env|
      EM.add_timer(0.05) { env["async.callback"].call([200, { "content-type" => "text/plain" }, ["later over h2"]]) }
      throw :async
    end
    expect(curl("--http2-prior-knowledge", "http://127.0.0.1:#{server.port}/")).to eq(["later over h2", "2"])
  end

  def next_event(queue, kind)
    loop do
      event = pop_within(queue, 5)
      return event[1] if event[0] == kind
    end
  end

  %i[evented threaded].each do |mode|
    it "streams a Topic and holds long-polls over HTTP/2 streams; a reset stream fires async.close (#{mode})" do
      streams = Lunar::Topic.new
      polls = Lunar::Topic.new
      server = serve(mode: mode) do |env|
        env["async.close"].callback { events << env["PATH_INFO"] }
        env["PATH_INFO"] == "/events" ? streams.stream(env, first: ": hello\n\n") : polls.hold(env)
      end
      h2 = H2Connection.new(server.port)
      kept, kept_events = h2.get("/events")
      reset, reset_events = h2.get("/events")
      _poll, poll_events = h2.get("/poll")
      [kept_events, reset_events].each { |q| expect(next_event(q, :headers)).to include(":status" => "200") }
      eventually { streams.size == 2 && polls.size == 1 }

      h2.reset(reset)
      expect(pop_within(events)).to eq("/events") # async.close for the reset stream only
      eventually { streams.size == 1 }
      expect(streams.publish("over one connection") + polls.publish("poll answer")).to eq(2)
      data = +""
      data << next_event(kept_events, :data) until data.include?("data: over one connection\n\n")
      expect(data).to start_with(": hello\n\n")
      expect(next_event(poll_events, :headers)).to include(":status" => "200")
      expect(next_event(poll_events, :data)).to eq("poll answer")
      expect(pop_within(events)).to eq("/poll")
      expect(kept.state).not_to eq(:closed)

      h2.close # the connection goes: the remaining stream's async.close fires
      expect(pop_within(events)).to eq("/events")
    ensure
      h2&.close
    end
  end

  describe "the lunar command" do
    it "serves TLS with Thin's --ssl flags" do
      cert, key = certificate
      child = spawn_child(lunar_cmd("--ssl", "--ssl-cert-file", cert, "--ssl-key-file", key, "-b", "tcp://127.0.0.1:0",
                                    fixture("hello.ru")))
      port = Integer(child.wait_for(%r{listening on ssl://127\.0\.0\.1:(\d+)})[1])
      expect(curl("-k", "--http2", "https://127.0.0.1:#{port}/")).to eq(["hello from Lunar #{Lunar::VERSION}\n", "2"])
    end

    it "exits 2 with one line when the certificate is missing or bad" do
      _, key = certificate
      missing = spawn_child(lunar_cmd("--ssl", "--ssl-cert-file", "/nonexistent.pem", "--ssl-key-file", key, fixture("hello.ru")))
      expect(missing.exit_status.exitstatus).to eq(2)
      expect(missing.rest.lines.map(&:chomp)).to match([%r{\Alunar: .*certificate /nonexistent\.pem}])
      bad = spawn_child(lunar_cmd("-b", "ssl://127.0.0.1:0?cert=#{key}&key=#{key}", fixture("hello.ru")))
      expect(bad.exit_status.exitstatus).to eq(2)
      expect(bad.rest.lines.size).to eq(1)
      no_key = spawn_child(lunar_cmd("--ssl", fixture("hello.ru")))
      expect(no_key.exit_status.exitstatus).to eq(2)
      expect(no_key.rest).to include("--ssl needs --ssl-cert-file")
    end
  end

  describe "client certificates (Puma's ssl_bind verify_mode and ca)" do
    let(:client) { TestCertificate.client }

    def bind(mode)
      cert, key = certificate
      "ssl://127.0.0.1:0?cert=#{cert}&key=#{key}&ca=#{client[:ca]}&verify_mode=#{mode}"
    end

    def curl_status(port, *args)
      _, status = Open3.capture2("curl", "-sk", "-o", "/dev/null", "--max-time", "5", *args, "https://127.0.0.1:#{port}/")
      status.exitstatus
    end

    it "requires one signed by the CA with force_peer, and serves those who present it" do
      server = serve(env_app, binds: [bind("force_peer")])
      expect(curl_status(server.port)).not_to eq(0) # no certificate: the handshake fails
      expect(curl_json("-k", "--cert", client[:cert], "--key", client[:key], "https://127.0.0.1:#{server.port}/").first)
        .to include("rack.url_scheme" => "https")
    end

    it "verifies one when sent with peer, and lets clients without one in" do
      server = serve(env_app, binds: [bind("peer")])
      expect(curl_status(server.port)).to eq(0)
      wrong_cert, wrong_key = certificate # self-signed, not by the CA
      expect(curl_status(server.port, "--cert", wrong_cert, "--key", wrong_key)).not_to eq(0)
    end

    it "refuses verify_mode without ca, or one it does not know, at boot" do
      cert, key = certificate
      expect { serve(env_app, binds: ["ssl://127.0.0.1:0?cert=#{cert}&key=#{key}&verify_mode=peer"]) }.to raise_error(Lunar::ConfigError, /needs ca=PATH/)
      expect do
        serve(env_app, binds: ["ssl://127.0.0.1:0?cert=#{cert}&key=#{key}&verify_mode=mostly"])
      end.to raise_error(Lunar::ConfigError, /verify_mode=mostly/)
    end
  end
end
