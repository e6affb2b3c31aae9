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
    rescue StandardError
      nil
    end

    # After logrotate moved the file away: write to a new one at the same path.
    def reopen
      @io.reopen(@path, "a") if @path
      @io.sync = true
    rescue SystemCallError
      nil
    end
  end
end
