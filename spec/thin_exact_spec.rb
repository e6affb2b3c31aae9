# frozen_string_literal: true

require "spec_helper"

# What a Thin app and a Thin user's habits find on Lunar: the async protocol's rough edges
# (../docs/async.md), Thin's header rules, its flags and its signals. Real servers, real
# sockets, a real EventMachine reactor.
RSpec.describe "Thin-exact behaviour" do
  # Starts a server whose error log (rack.errors, taken from $stderr at start) the spec reads.
  def serve_logged(app, **options)
    log = StringIO.new
    stderr = $stderr
    $stderr = log
    [serve(app, **options), log]
  ensure
    $stderr = stderr
  end

  %i[evented threaded].each do |mode|
    context "in #{mode} mode" do
      it "answers 500 to the request whose EM.next_tick or EM.add_timer block raised, logs it, and carries on" do
        app = lambda do |env|
          case env["PATH_INFO"]
          when "/tick" then EM.next_tick { raise "broken in next_tick" }
          when "/timer" then EM.add_timer(0.01) { EM.next_tick { raise "broken in a nested timer" } }
          else return [200, { "content-length" => "2" }, ["ok"]]
          end
          throw :async
        end
        server, log = serve_logged(app, mode: mode)
        expect(get(server, "/tick").code).to eq("500")
        expect(get(server, "/timer").code).to eq("500")
        expect(Array.new(3) { get(server, "/").body }).to eq(%w[ok ok ok])
        expect(log.string).to include("GET /tick: RuntimeError: broken in next_tick", "GET /timer: RuntimeError: broken in a nested timer")
        expect(log.string).to match(/thin_exact_spec\.rb:\d+/) # with its backtrace
      end

      it "sends what a raising each yielded, then closes; answers 500 if it yielded nothing; async.callback returns" do
        returned = Queue.new
        app = lambda do |env|
          early = env["PATH_INFO"] == "/early"
          body = Object.new
          body.define_singleton_method(:each) do |&block|
            block.call("first chunk ") unless early
            raise "each broke"
          end
          EM.next_tick { returned << env["async.callback"].call([200, { "content-length" => "100" }, body]).inspect }
          throw :async
        end
        server = serve(app, mode: mode)
        late = raw_until_close(server, "GET /late HTTP/1.1\r\nHost: h\r\n\r\n")
        expect(late).to start_with("HTTP/1.1 200").and include("Content-Length: 100").and end_with("\r\n\r\nfirst chunk ")
        expect(pop_within(returned)).to eq("nil")
        early = raw(server, "GET /early HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        expect(status_of(early)).to eq("500")
        expect(pop_within(returned)).to eq("nil")
      end

      it "calls each with a discarding block on a deferrable body that comes after its client left" do
        events = Queue.new
        called = Queue.new
        app = lambda do |env|
          # The answer comes once the client has gone: on the reactor's turn after async.close.
          env["async.close"].callback do
            events << :async_close
            EM.next_tick do
              body = SeedBody.new
              body.callback { events << :body_succeeded }
              env["async.callback"].call([200, { "content-type" => "text/plain" }, body])
              body.call(["nobody reads this"]) # the seed's DeferrableBody calls the block it kept
              body.succeed
              events << :no_error
            rescue StandardError => e
              events << e
            end
          end
          called << true
          throw :async
        end
        server = serve(app, mode: mode)
        sock = connect(server)
        sock.write("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        pop_within(called) # the app holds the request: now the client leaves
        sock.close
        expect(Array.new(3) { pop_within(events) }).to eq(%i[async_close body_succeeded no_error])
        expect(server.pending_async).to eq(0)
      end

      # EventMachine's send_data writes `to_s`: an old Thin app's Integer chunk is its digits.
      it "writes a chunk that is no String by its to_s, as Thin does, from an Array, each, and a deferrable body" do
        app = lambda do |env|
          case env["PATH_INFO"]
          when "/array" then [200, {}, [1, :two, nil, "3"]]
          when "/each" then [200, {}, [4, :five].each]
          else
            body = SeedBody.new
            EM.next_tick do
              env["async.callback"].call([200, {}, body])
              body.call([6, nil, :seven])
              body.succeed
            end
            throw :async
          end
        end
        server = serve(app, mode: mode)
        expect(%w[/array /each /deferrable].map { |path| get(server, path).body }).to eq(%w[1two3 4five 6seven])
      end

      # Thin writes a String body as it is (Rack 1's rule, in old Thin apps); Lunar sent an
      # empty 200 and said nothing. A body that is no body at all is the app's error, except
      # where nothing would be written (Puma does not look at it then).
      it "writes a String body as Thin does, directly and through async.callback; a nil body is a 500, logged" do
        app = lambda do |env|
          case env["PATH_INFO"]
          when "/string" then [200, { "content-type" => "text/plain" }, "a string body"]
          when "/later"
            EM.next_tick { env["async.callback"].call([200, {}, "later, as a string"]) }
            throw :async
          when "/nil" then [200, {}, nil]
          else [204, {}, nil]
          end
        end
        server, log = serve_logged(app, mode: mode)
        expect(get(server, "/string").body).to eq("a string body")
        expect(get(server, "/later").body).to eq("later, as a string")
        expect(get(server, "/nil").code).to eq("500")
        expect(log.string).to include("GET /nil: ArgumentError: the response body (NilClass) has no each")
        expect(get(server, "/no-content").code).to eq("204")
      end
    end
  end

  describe "response headers as Thin writes them (Rack 2 apps)" do
    def headers_of(text)
      text.split("\r\n\r\n", 2).first.split("\r\n").drop(1)
    end

    it "drops nil values, writes a repeated name once (except the four that repeat), splits Strings and Arrays" do
      headers = [["X-Nil", nil], %w[X-First one], %w[x-first two], ["Set-Cookie", "a=1"], ["set-cookie", "b=2"],
                 %w[WWW-Authenticate Basic], %w[www-authenticate Bearer], %W[X-Lines c\nd], ["X-List", %w[e f]],
                 %w[Content-Length 0]]
      server = serve { [200, RackVersion.major >= 3 ? headers.to_h { |k, v| [k, v] } : headers, []] }
      lines = headers_of(raw(server, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
      expect(lines.grep(/\AX-Nil/i)).to be_empty
      expect(lines.grep(/\AX-First/i)).to eq(["X-First: one"])
      expect(lines).to include("Set-Cookie: a=1", "Set-Cookie: b=2", "Www-Authenticate: Basic", "Www-Authenticate: Bearer",
                               "X-Lines: c", "X-Lines: d", "X-List: e", "X-List: f")
    end

    it "answers 500 to a status that is no HTTP status, says why, and sends none of that response" do
      server, log = serve_logged(lambda do |env|
        status = { "/99" => 99, "/1000" => 1000, "/nil" => nil, "/103" => 103 }.fetch(env["PATH_INFO"], 200)
        next [status, { "x-app" => "1" }, ["the app's body"]] unless env["PATH_INFO"] == "/async99"

        Thread.new { env["async.callback"].call([99, { "x-app" => "1" }, ["the app's body"]]) }
        throw :async
      end, async: true)
      %w[/99 /1000 /nil /103 /async99].each do |path|
        response = get(server, path)
        expect([response.code, response["x-app"]]).to eq(["500", nil]), path
        expect(response.body).not_to include("the app's body")
      end
      expect(log.string).to include("GET /99: ArgumentError: status 99: Rack needs an Integer from 200 to 999",
                                    "GET /1000: ArgumentError: status 1000", "GET /nil: ArgumentError: status 0", "GET /103: ArgumentError: status 103")
      expect(get(server).code).to eq("200")
    end

    it "writes a number or a Symbol as its text, as Puma does" do
      headers = { "content-length" => 2, "x-count" => 3, "x-ratio" => 0.5, "x-cache" => :hit, "x-list" => [1, "b"] }
      server = serve { [200, headers, ["ok"]] }
      answer = raw(server, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
      expect(headers_of(answer)).to include("Content-Length: 2", "X-Count: 3", "X-Ratio: 0.5", "X-Cache: hit", "X-List: 1", "X-List: b")
      expect(answer).to start_with("HTTP/1.1 200").and end_with("ok")
    end

    it "answers 500 to a header value that is neither a String, a number, a Symbol nor an Array, logs it, and carries on" do
      server, log = serve_logged(lambda do |env|
        next [200, { "content-length" => "2" }, ["ok"]] unless env["PATH_INFO"] == "/time"

        [200, { "content-type" => "text/plain", "expires" => Time.now }, ["never sent"]]
      end)
      expect(get(server, "/time").code).to eq("500")
      expect(log.string).to include("GET /time", "expires", "a Time value")
      expect(get(server).body).to eq("ok")
    end
  end

  describe "the Connection header" do
    it "sends an app's Connection: keep-alive as given; whether the socket stays is the request's" do
      server = serve { [200, { "connection" => "keep-alive", "content-length" => "2" }, ["ok"]] }
      answers = on_one_connection(server, ["GET /a HTTP/1.1\r\nHost: h\r\n\r\n"] * 2, /ok\z/)
      answers.each { |text| expect(text).to include("Connection: keep-alive").and end_with("ok") }
      old = raw_until_close(server, "GET / HTTP/1.0\r\n\r\n") # 1.0 without keep-alive: closed
      expect(old).to include("Connection: keep-alive").and end_with("ok")
    end
  end

  describe "--max-persistent-conns" do
    let(:app) { ->(_env) { [200, { "content-length" => "2" }, ["ok"]] } }

    it "keeps at most N connections alive; past it a response says Connection: close and the connection closes" do
      server = serve(app, max_persistent_conns: 1)
      first = connect(server)
      first.write("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
      expect(read_until(first, /ok\z/)).not_to include("Connection: close")
      second = raw_until_close(server, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
      expect(second).to include("Connection: close").and end_with("ok")
      first.write("GET / HTTP/1.1\r\nHost: h\r\n\r\n") # the first is still kept alive
      expect(read_until(first, /ok\z/)).to end_with("ok")
      first.close
      eventually { server.live_connections.zero? }
      again = on_one_connection(server, ["GET / HTTP/1.1\r\nHost: h\r\n\r\n"] * 2, /ok\z/) # its place is free again
      expect(again).to all(end_with("ok"))
    ensure
      first&.close
    end

    it "closes every connection after its response with 0" do
      server = serve(app, max_persistent_conns: 0)
      text = raw(server, "GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
      expect(text.scan("HTTP/1.1 200").size).to eq(1)
      expect(text).to include("Connection: close")
    end
  end

  describe "per-request deferral: the app's deferred?(env), in evented mode" do
    it "runs a deferred request on a pool thread while the reactor serves the others" do
      started = Queue.new
      release = Queue.new
      wait_for_release = -> { pop_within(release, 10) }
      app = Class.new do
        define_method(:deferred?) { |env| env["PATH_INFO"] == "/slow" }
        define_method(:call) do |env|
          if env["PATH_INFO"] == "/slow"
            started << true
            wait_for_release.call # held on its pool thread until /fast has been answered
          end
          text = "#{EM.reactor_thread? ? 'reactor' : 'pool'} multithread=#{env['rack.multithread']}"
          [200, { "content-length" => text.bytesize.to_s }, [text]]
        end
      end.new
      server = serve(app, mode: :evented)
      slow = Thread.new { get(server, "/slow").body }
      pop_within(started)
      expect(get(server, "/fast").body).to eq("reactor multithread=false") # while /slow is still held
      release << true
      expect(slow.value).to eq("pool multithread=true")
    end
  end

  describe "the lunar command as thin start" do
    it "runs Thin's --threaded model with --threaded --eventmachine: EM loaded first, the app on a pool" do
      child = spawn_child(lunar_cmd("--threaded", "--eventmachine", "-t", "4", "-b", "tcp://127.0.0.1:0", fixture("em_threaded.ru")))
      port = Integer(child.wait_for(%r{threaded mode, 4 threads.*listening on tcp://127\.0\.0\.1:(\d+)})[1])
      expect(Net::HTTP.get(URI("http://127.0.0.1:#{port}/"))).to eq("from a pool thread via the reactor, multithread=true")
      child.signal("TERM")
      expect(child.exit_status.exitstatus).to eq(0)
    end
  end

  describe "rackup -s lunar with an app that uses EventMachine at request time" do
    def rackup_cmd
      gem_name = RackVersion.major >= 3 ? "rackup" : "rack"
      [RbConfig.ruby, Gem.bin_path(gem_name, "rackup")]
    end

    it "works in rackup's development stack, as under rackup -s thin" do
      child = spawn_child([*rackup_cmd, "-s", "lunar", "-o", "127.0.0.1", "-p", "0", fixture("em_at_request.ru")])
      port = Integer(child.wait_for(%r{listening on tcp://127\.0\.0\.1:(\d+)})[1])
      expect(Net::HTTP.get(URI("http://127.0.0.1:#{port}/"))).to eq("timer fired on the reactor")
      child.signal("INT")
      expect(child.exit_status.success?).to be(true)
    end
  end

  describe "Rails 6.1: async.callback without EventMachine", rack: 2 do
    let(:app) { fixture("rails_app") }
    let(:rails_env) { { "RAILS_ENV" => "production", "PIDFILE" => File.join(scratch_dir("lunar-rails"), "server.pid") } }

    def rails_server(env = {})
      child = spawn_child([RbConfig.ruby, "bin/rails", "server", "-u", "lunar", "-b", "127.0.0.1", "-p", "0"], chdir: app, env: rails_env.merge(env))
      [child, Integer(child.wait_for(%r{listening on tcp://127\.0\.0\.1:(\d+)})[1])]
    end

    it "offers no async.callback under rails s -u lunar by default, and a bare throw :async gets a 500, logged" do
      child, port = rails_server
      expect(Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/async")).code).to eq("501") # the app's fallback
      expect(Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/bare")).code).to eq("500")
      expect(child.wait_for(%r{GET /bare: .*async protocol is off: (.*)})[1]).to include("LUNAR_ASYNC=1")
    end

    it "answers from a plain thread under rails s -u lunar with LUNAR_ASYNC=1" do
      _, port = rails_server("LUNAR_ASYNC" => "1")
      expect(Net::HTTP.get(URI("http://127.0.0.1:#{port}/async"))).to eq("answered later from a thread")
    end

    it "answers under rackup -s lunar -O async" do
      child = spawn_child([RbConfig.ruby, Gem.bin_path("rack", "rackup"), "-s", "lunar", "-O", "async", "-o", "127.0.0.1", "-p", "0",
                           "-E", "production", "config.ru"], chdir: app, env: rails_env)
      port = Integer(child.wait_for(%r{listening on tcp://127\.0\.0\.1:(\d+)})[1])
      expect(Net::HTTP.get(URI("http://127.0.0.1:#{port}/async"))).to eq("answered later from a thread")
    end
  end
end
