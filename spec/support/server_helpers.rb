# frozen_string_literal: true

# Starting in-process servers and talking to them: Net::HTTP for ordinary requests, raw
# sockets for what Net::HTTP cannot send (pipelining, malformed input, slow clients).
module ServerHelpers
  DEFAULTS = { binds: ["tcp://127.0.0.1:0"], shutdown_timeout: 2, threads: 4, mode: :threaded }.freeze
  # LUNAR_SPEC_IO_THREADS=0 runs every threaded in-process server inline (script/test's
  # third pass), unless an example sets io_threads itself.
  IO_THREADS = ENV["LUNAR_SPEC_IO_THREADS"]&.then { |n| Integer(n) }

  def serve(app = nil, **options, &block)
    options = DEFAULTS.merge(options)
    options = { io_threads: IO_THREADS }.merge(options) if IO_THREADS && options[:mode] == :threaded
    server = Lunar::Server.new(app || block, options).start
    @servers << server
    server
  end

  # An app answering "ok", except that a request for `path` first says so on `held`, then
  # waits (at most 5 s) for `release`: a Ruby thread held in the app.
  def holding_app(held, release, path: "/hold")
    lambda do |env|
      if env["PATH_INFO"] == path
        held << true
        pop_within(release)
      end
      [200, { "content-length" => "2" }, ["ok"]]
    end
  end

  def http(server, &)
    Net::HTTP.start("127.0.0.1", server.port, read_timeout: 10, &)
  end

  def get(server, path = "/", headers = {})
    http(server) { |h| h.get(path, headers) }
  end

  # A connection to a server, or to a port (a child process's).
  def connect(server)
    TCPSocket.new("127.0.0.1", server.respond_to?(:port) ? server.port : server)
  end

  # Writes `bytes`, then reads until the server closes the connection (or `timeout`).
  def raw(server, bytes, timeout: 5)
    on_new_connection(server, bytes) { |sock| read_all(sock, timeout: timeout) }
  end

  # Writes `bytes` on a new connection and reads until the server closes it (raising if it
  # does not within `within` seconds).
  def raw_until_close(server, bytes, within: 5)
    on_new_connection(server, bytes) { |sock| read_to_eof(sock, within: within) }
  end

  # Writes `bytes` on a new connection, then shuts its write side (`nc -N`, a scripted health
  # check; bridge/half_close.rs); yields the socket, by default reading until the server
  # closes it (raising if it does not within 5 s).
  def half_closed(server, bytes, &reading)
    reading ||= ->(sock) { read_to_eof(sock) }
    on_new_connection(server, bytes) do |sock|
      sock.close_write
      reading.call(sock)
    end
  end

  def on_new_connection(server, bytes)
    sock = connect(server)
    sock.write(bytes)
    yield sock
  ensure
    sock&.close
  end

  # Reads until the server closes the connection, or `timeout`: what came.
  def read_all(sock, timeout: 5)
    drain(sock, timeout).first
  end

  # Reads until the server closes the connection; raises if it is still open after
  # `within` seconds (a test of "it closes" must not pass on a timeout).
  def read_to_eof(sock, within: 5)
    out, closed = drain(sock, within)
    raise "connection still open after #{within} s (read #{out.bytesize} bytes)" unless closed

    out
  end

  # `[bytes read, whether the server closed]` after at most `seconds`.
  def drain(sock, seconds)
    out = +""
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
    loop do
      left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
      return [out, false] if left <= 0 || !sock.wait_readable(left)

      chunk = sock.read_nonblock(65_536, exception: false)
      return [out, true] if chunk.nil? # EOF

      out << chunk unless chunk == :wait_readable
    end
  rescue Errno::ECONNRESET
    [out, true]
  end

  # Reads until `pattern` has been seen (or `timeout`), leaving the socket open.
  def read_until(sock, pattern, timeout: 5)
    out = +""
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    until out.match?(pattern)
      left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
      break if left <= 0 || !sock.wait_readable(left)

      chunk = sock.read_nonblock(65_536, exception: false)
      break if chunk.nil?

      out << chunk unless chunk == :wait_readable
    end
    out
  end

  # Sends each request in turn on ONE connection, reading each answer before the next, and
  # returns the answers. Net::HTTP would quietly reconnect if the server closed; this fails.
  # `until` matches the end of each answer.
  def on_one_connection(server, requests, until_pattern)
    sock = connect(server)
    requests.map do |req|
      raise "the server closed the connection before #{req.lines.first.inspect}" if sock.wait_readable(0) && sock.eof?

      sock.write(req)
      read_until(sock, until_pattern)
    end
  ensure
    sock&.close
  end

  # Queue#pop that fails the example instead of hanging it when the event never comes.
  def pop_within(queue, seconds = 5)
    Timeout.timeout(seconds) { queue.pop }
  rescue Timeout::Error
    raise "no event within #{seconds}s"
  end

  # Waits (polling a condition, not sleeping a fixed time) until the block is truthy.
  def eventually(timeout: 5)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    until (result = yield)
      raise "condition not met within #{timeout}s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.01
    end
    result
  end

  # The status code of a raw HTTP/1 answer.
  def status_of(text)
    text[%r{\AHTTP/1\.[01] (\d{3})}, 1]
  end

  # Whether a connection to `port` on 127.0.0.1 is refused: nothing listens there any more
  # (a connect racing the listener's close is reset instead). A SYN that lands as the
  # listener closes can also be dropped, and the kernel would send it again only a second
  # later (seen on CI: a stop noticed 1002 ms late): a short connect timeout answers "not
  # yet" instead, and the caller, polling, looks again.
  def refused?(port)
    Socket.tcp("127.0.0.1", port, connect_timeout: 0.1).close
    false
  rescue Errno::ECONNREFUSED, Errno::ECONNRESET
    true
  rescue Errno::ETIMEDOUT
    false
  end

  # An app that records the env it saw and answers with a fixed text.
  def recording_app(seen, text = "ok")
    lambda do |env|
      env["rack.input"] && (env["lunar.test.body"] = env["rack.input"].read)
      seen << env
      [200, { "content-type" => "text/plain", "content-length" => text.bytesize.to_s }, [text]]
    end
  end
end
