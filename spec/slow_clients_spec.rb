# frozen_string_literal: true

require "spec_helper"

# Clients that read slowly or not at all must not hold a Ruby thread (threaded mode) or the
# reactor (evented mode): a streamed body whose client is behind by --stream-buffer parks
# (see Lunar::Parking) and its thread serves other requests.
RSpec.describe "slow clients" do
  # `/big/N`: N chunks of 64 KiB from `each`; `/call/N`: the same through a Rack 3
  # streaming body; anything else: a short answer.
  let(:app) do
    lambda do |env|
      kind, count = env["PATH_INFO"].split("/").drop(1)
      case kind
      when "big" then [200, { "content-type" => "text/plain" }, SlowChunks.new(Integer(count))]
      when "call" then [200, { "content-type" => "text/plain" }, streaming_body(Integer(count))]
      else [200, { "content-length" => "2" }, ["ok"]]
      end
    end
  end

  # A Rack 3 streaming body writing `count` chunks of 64 KiB.
  def streaming_body(count)
    lambda do |stream|
      count.times { stream.write(SlowChunks::CHUNK) }
      stream.close
    end
  end

  # A client that sends its request and reads nothing (until the spec drains it).
  def stalled_client(server, path)
    sock = connect(server)
    sock.write("GET #{path} HTTP/1.1\r\nHost: h\r\n\r\n")
    sock
  end

  def timed_get(server)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    expect(get(server).body).to eq("ok")
    Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
  end

  %i[threaded evented].each do |mode|
    it "serves others at once while 8 clients read nothing of 64 MiB, and cuts those off after --write-timeout (#{mode})" do
      server = serve(app, mode: mode, threads: 4, write_timeout: 1, stream_buffer: 256 * 1024)
      stalled = Array.new(8) { stalled_client(server, "/big/1024") }
      eventually { server.parked_bodies == 8 } # all eight parked, none holding a thread
      slowest = Array.new(20) { timed_get(server) }.max
      expect(slowest).to be < 0.5 # before parking: 29 s threaded, 8 s evented
      # Each stalled client is cut off after --write-timeout: the server lets go of it (its
      # connection closes) having sent --stream-buffer plus what the kernel's socket buffers
      # hold, never the 64 MiB.
      eventually(timeout: 5) { server.pending_async.zero? && server.live_connections.zero? }
      received = stalled.map { |sock| read_all(sock, timeout: 10).bytesize }
      expect(received).to all(be < 16 * 1024 * 1024)
    ensure
      stalled&.each(&:close)
    end

    it "delivers every byte to a client that reads slowly, parking many times (#{mode})" do
      server = serve(app, mode: mode, threads: 2, write_timeout: 2, stream_buffer: 64 * 1024)
      # 16 MiB each: more than the kernel's socket buffers can take (tcp_wmem's 4 MiB at most),
      # so the body must wait for the reader; with 4 MiB a send buffer grown to its maximum
      # could take it all, and the body never park (seen once under a loaded CI machine).
      %w[/big/256 /call/256].each do |path|
        sock = connect(server)
        sock.setsockopt(Socket::SOL_SOCKET, Socket::SO_RCVBUF, 16_384)
        sock.write("GET #{path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        text = +""
        reads = 0
        parked = 0
        while sock.wait_readable(5) && (chunk = sock.read_nonblock(32_768, exception: false))
          next if chunk == :wait_readable

          text << chunk
          reads += 1
          parked += server.parked_bodies
          sleep 0.002 # slower than the server writes: the body parks again and again
          expect(timed_get(server)).to be < 0.5 if (reads % 32).zero? # others are served meanwhile
        end
        sock.close
        expect(parked).to be > 0 # the body did wait for the reader, parked
        head, body = text.split("\r\n\r\n", 2)
        expect(head).to start_with("HTTP/1.1 200").and include("Transfer-Encoding: chunked")
        expect(dechunk(body)).to eq(SlowChunks::CHUNK * 256)
      end
    end
  end

  # A chunked body's data; raises unless it ends with the last chunk.
  def dechunk(body)
    data = +""
    loop do
      size_line, body = body.split("\r\n", 2)
      size = Integer(size_line, 16)
      return data if size.zero? && body == "\r\n"
      raise "truncated chunked body" if size.zero? || body.bytesize < size + 2

      data << body.byteslice(0, size)
      body = body.byteslice(size + 2..)
    end
  end
end
