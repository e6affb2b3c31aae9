# frozen_string_literal: true

require "spec_helper"

# `--io-threads 0` (inline): no tokio thread of Lunar's own; the Ruby threads that run the
# app drive the I/O whenever they wait for work, as Thin's one thread does. script/test runs
# the whole in-process suite this way once more (LUNAR_SPEC_IO_THREADS=0); these are the
# behaviours particular to it.
RSpec.describe "inline mode (--io-threads 0)" do
  def io_threads_alive
    Dir["/proc/self/task/*/comm"].count { |comm| File.read(comm).strip == "lunar-io" rescue false } # rubocop:disable Style/RescueModifier -- a thread may end between the listing and the read
  end

  let(:held) { Queue.new }
  let(:release) { Queue.new }
  let(:app) { holding_app(held, release) }

  it "starts no I/O thread: the app's thread answers over the socket itself" do
    before = io_threads_alive
    server = serve(app, io_threads: 0, threads: 1)
    expect(server.mode).to eq("threaded mode, 1 thread, doing the I/O (inline)")
    expect(io_threads_alive).to eq(before)
    http(server) { |h| expect(Array.new(3) { h.get("/").body }).to eq(%w[ok ok ok]) } # kept alive
    request = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    pipelined = raw(server, "#{request}#{request}GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    expect(pipelined.scan("HTTP/1.1 200").size).to eq(3)

    threaded = serve(app, io_threads: 1, threads: 1) # the same count sees a server's I/O thread
    eventually { io_threads_alive == before + 1 }
    expect(get(threaded).body).to eq("ok")
  end

  # With I/O threads the waiting request would be read, given an id and queued at once
  # (requests_count 2, Puma's stat); inline nothing reads it until the thread is back.
  it "with one thread, a request is not even read while the app holds it (Thin's model), then is served" do
    server = serve(app, io_threads: 0, threads: 1)
    holder = Thread.new { get(server, "/hold").body }
    pop_within(held)
    waiting = Thread.new { get(server, "/").body }
    expect(waiting.join(0.3)).to be_nil
    expect(server.stats.values_at(:requests_count, :connections)).to eq([1, 1])
    release << true
    expect([holder.value, waiting.value]).to eq(%w[ok ok])
    expect(server.stats[:requests_count]).to eq(2)
  end

  it "with more threads, one drives the I/O and serves while another is held in the app" do
    server = serve(app, io_threads: 0, threads: 2)
    holder = Thread.new { get(server, "/hold").body }
    pop_within(held)
    expect(Array.new(3) { get(server, "/").body }).to eq(%w[ok ok ok])
    release << true
    expect(holder.value).to eq("ok")
  end

  it "hands a hijacked socket over while the one thread that must do it waits for it" do
    server = serve(io_threads: 0, threads: 1) do |env|
      io = env["rack.hijack"].call
      io.write("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
      io.close
      [200, {}, []]
    end
    expect(raw_until_close(server, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")).to end_with("\r\n\r\nhijacked")
    expect(raw_until_close(server, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")).to end_with("\r\n\r\nhijacked")
  end

  it "is refused in evented mode, whose reactor cannot drive the I/O" do
    expect { serve(app, io_threads: 0, mode: :evented) }.to raise_error(Lunar::ConfigError, /--io-threads 0 needs threaded mode/)
  end
end
