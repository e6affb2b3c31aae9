# frozen_string_literal: true

module Lunar
  # One line per response, in Puma's CommonLogger format: Common Log Format, then the
  # seconds the response took (`--access-log [FILE]`, `log_requests` in a config file).
  #
  #   127.0.0.1 - - [04/Dec/2026:18:35:39 +0000] "GET /x?y=1 HTTP/1.1" 200 12 0.0004
  class AccessLog
    STARTED = "lunar.started" # env key: the monotonic clock when the env was built

    # "-" or nil: stdout; else the file, appended to and reopened on HUP.
    def self.open(target)
      target.nil? || target == "-" ? new($stdout) : new(File.open(target, "a"), path: target)
    end

    def initialize(io, path: nil)
      @io = io
      @path = path
      @io.sync = true if @io.respond_to?(:sync=)
    end

    def log(env, status, bytes)
      time = Time.now.strftime("%d/%b/%Y:%H:%M:%S %z")
      started = env[STARTED]
      seconds = started ? Process.clock_gettime(Process::CLOCK_MONOTONIC) - started : 0
      request_line = "#{env['REQUEST_METHOD']} #{env['REQUEST_URI']} #{env['SERVER_PROTOCOL']}"
      @io.write(format(%(%s - - [%s] "%s" %d %s %0.4f\n), env["REMOTE_ADDR"] || "-", time, request_line, status.to_i,
                       bytes.to_i.positive? ? bytes.to_i : "-", seconds))
      writing_again if @failing
    rescue StandardError => e
      failed(e)
    end

    # After logrotate moved the file away: write to a new one at the same path.
    def reopen
      @io.reopen(@path, "a") if @path
      @io.sync = true
    rescue SystemCallError
      nil
    end

    private

    # A line that cannot be written (disk full, a closed pipe) is dropped; the response is
    # not the log's to fail. Said once when lines start to be dropped and once when they are
    # written again, not once a request. Races between threads cost at most a repeated line.
    def failed(error)
      return if @failing

      @failing = true
      Log.warn("access log #{@path || 'on stdout'}: cannot write (#{error.class}: #{error.message}); " \
               "dropping its lines until it can")
    end

    def writing_again
      @failing = false
      Log.warn("access log #{@path || 'on stdout'}: writing again")
    end
  end
end
