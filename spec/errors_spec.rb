# frozen_string_literal: true

require "spec_helper"

RSpec.describe "errors in the app" do
  let(:log) { StringIO.new }

  it "answers 500, logs the backtrace to rack.errors, and keeps serving" do
    server = serve do |env|
      env["rack.errors"] = log
      raise ArgumentError, "bad thing" if env["PATH_INFO"] == "/boom"

      [200, { "content-length" => "2" }, ["ok"]]
    end
    http(server) do |h|
      response = h.get("/boom")
      expect(response.code).to eq("500")
      expect(h.get("/after").body).to eq("ok")
    end
    answers = on_one_connection(server, ["GET /boom HTTP/1.1\r\nHost: h\r\n\r\n", "GET /after HTTP/1.1\r\nHost: h\r\n\r\n"],
                                /(Error\n|ok)\z/)
    expect(answers).to match([start_with("HTTP/1.1 500"), end_with("ok")]) # the 500 kept the connection
    expect(log.string).to include("ArgumentError: bad thing").and include("errors_spec.rb")
  end

  it "closes the connection when the app fails after the head was sent" do
    server = serve do |env|
      env["rack.errors"] = log
      body = Enumerator.new do |y|
        y << "partial"
        raise "mid-stream"
      end
      [200, {}, body]
    end
    text = raw(server, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    # The connection closes (raw returns at EOF) and the chunked body never completes; how
    # much of the head and first chunk left before the close is up to timing.
    expect(text).not_to end_with("0\r\n\r\n")
    expect(log.string).to include("mid-stream")
  end

  it "survives non-StandardError exceptions (ScriptError, SystemStackError)" do
    server = serve do |env|
      env["rack.errors"] = log
      raise(NotImplementedError, "nope") unless env["PATH_INFO"] == "/deep"

      recurse = ->(depth) { recurse.call(depth + 1) }
      recurse.call(0) # SystemStackError
    end
    expect(get(server, "/deep").code).to eq("500")
    expect(get(server, "/x").code).to eq("500")
    expect(log.string).to include("SystemStackError").and include("NotImplementedError")
  end

  # Thin rescues Exception around app.call and answers 500; Puma's threads survive it too.
  # rack-timeout's RequestTimeoutException is an Exception on purpose (so apps do not
  # rescue it), and an app may call `exit`: neither may take a Lunar thread with it.
  stranger = Class.new(Exception) # rubocop:disable Lint/InheritException -- what the spec is about
  %i[threaded evented].each do |mode|
    it "answers 500 to any Exception from the app (an Exception subclass, exit), in #{mode} mode, and keeps every thread" do
      server = serve(mode: mode, threads: 2) do |env|
        env["rack.errors"] = log
        case env["PATH_INFO"]
        when "/stranger" then raise stranger, "not a StandardError"
        when "/exit" then exit 3
        when "/later"
          EM.next_tick { raise stranger, "in a callback" } # the reactor's thread, not the app's
          throw :async
        else [200, { "content-length" => "2" }, ["ok"]]
        end
      end
      paths = %w[/stranger /exit] * 3 # more than the threads there are
      paths << "/later" if mode == :evented
      expect(paths.map { |path| get(server, path).code }).to all(eq("500"))
      expect(Array.new(4) { get(server, "/").body }).to eq(%w[ok ok ok ok])
      expect(log.string).to include("not a StandardError", "SystemExit: exit")
      expect(log.string).to include("in a callback") if mode == :evented
    end

    # An error that raises again when asked its message or backtrace (a custom exception's
    # broken #message) made the error path raise each time it tried: it escaped the worker,
    # and with one thread the server answered nothing more.
    it "answers and logs an error that raises when described, and keeps its one thread, in #{mode} mode" do
      liar = Class.new(StandardError) { def message = raise(self.class) }
      mute = Class.new(StandardError) { def backtrace = raise(self.class) }
      server = serve(mode: mode, threads: 1) do |env|
        env["rack.errors"] = log
        raise liar if env["PATH_INFO"] == "/liar"
        raise mute if env["PATH_INFO"] == "/mute"

        [200, { "content-length" => "2" }, ["ok"]]
      end
      expect(%w[/liar /mute /liar].map { |path| get(server, path).code }).to all(match(/\A5\d\d\z/))
      expect(Array.new(3) { get(server, "/").body }).to eq(%w[ok ok ok])
      expect(server.stats[:running]).to eq(1) if mode == :threaded
      expect(log.string).to include("(its #message raised)") # logged where the app's errors go
    end
  end

  # A Thin app's periodic timer set up at boot belongs to no request. EventMachine's error
  # handler only ever sees StandardError (its C side rescues no more); anything else ended
  # the reactor, and with it every response of the process, while the server kept accepting.
  it "keeps the reactor when a callback scheduled outside any request raises an Exception" do
    server = serve(mode: :evented) { [200, { "content-length" => "2" }, ["ok"]] }
    ran = Queue.new
    EM.next_tick do
      ran << :raising
      raise stranger, "outside any request"
    end
    expect(pop_within(ran)).to eq(:raising)
    liar = Class.new(StandardError) { def message = raise(self.class) } # raises when described
    EM.next_tick do
      ran << :liar
      raise liar
    end
    expect(pop_within(ran)).to eq(:liar)
    EM.next_tick { ran << :after }
    expect(pop_within(ran)).to eq(:after) # the reactor still runs callbacks
    expect(get(server, "/").body).to eq("ok")
  end

  # Puma's pool starts a thread for waiting work when one has gone; a Lunar pool lost it
  # for good, and with one thread the server answered nothing more.
  it "replaces a worker thread that app code ended (Thread.exit inside a request)" do
    server = serve(threads: 1) do |env|
      Thread.exit if env["PATH_INFO"] == "/exit_thread"
      [200, { "content-length" => "2" }, ["ok"]]
    end
    expect(get(server, "/exit_thread").code).to eq("503") # answered, never left hanging
    expect(Array.new(3) { get(server, "/").body }).to eq(%w[ok ok ok])
    expect(server.stats[:running]).to eq(1)
  end

  # What rack-timeout does when its timer fires just as the request ends: the exception
  # reaches the thread after the app has returned, while it waits for the next request.
  it "keeps a worker thread that app code raised into while it waited for a request, and stops" do
    armed = Queue.new
    server = serve(threads: 1) do |env|
      armed << Thread.current if env["PATH_INFO"] == "/arm"
      [200, { "content-length" => "2" }, ["ok"]]
    end
    expect(get(server, "/arm").body).to eq("ok")
    worker = armed.pop
    eventually { worker[Lunar::Threaded::BUSY] == false && worker.status == "sleep" } # waiting, outside the app
    worker.raise(stranger, "raised into an idle worker")
    expect(Array.new(3) { get(server, "/").body }).to eq(%w[ok ok ok]) # the only thread still serves
    expect(worker).to be_alive
    server.stop(0).wait
  end
end
