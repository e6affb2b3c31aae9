# frozen_string_literal: true

require "json"
require "time"

module Lunar
  # Lunar's own log lines, Ruby's and Rust's alike: one format (`text`: lifecycle lines as
  # they are, warnings and errors as `lunar: …`; or `json`, one object a line) and one threshold (`--log-format`, `--log-level`), set once
  # at boot. Lifecycle lines (boot, stop, workers) go to stdout, warnings and errors to
  # stderr, as Puma writes them; the native core writes its own warnings to stderr in the
  # same format (Native.configure_log). Safe in signal traps: writing takes no lock.
  module Log
    LEVELS = { debug: 0, info: 1, warn: 2, error: 3 }.freeze

    @format = :text
    @threshold = LEVELS[:info]

    class << self
      attr_reader :format

      def configure(format: :text, level: :info)
        @format = format.to_sym
        @threshold = LEVELS.fetch(level.to_sym)
        Native.configure_log(@format.to_s, level.to_s) if defined?(Native) && Native.respond_to?(:configure_log)
        self
      end

      def debug(message, **fields) = write(:debug, message, fields)
      def info(message, **fields) = write(:info, message, fields)
      def warn(message, **fields) = write(:warn, message, fields)
      def error(message, **fields) = write(:error, message, fields)

      # An exception with its backtrace: one line each in text, one object in JSON.
      def exception(message, error, **fields)
        write(:error, "#{message}: #{describe(error)}", fields.merge(error: error.class.name, backtrace: backtrace_of(error)))
      end

      # "Class: message" for an error, never raising: a log line must not fail on the error
      # it reports, and an app's exception may raise when asked its message.
      def describe(error) = "#{error.class}: #{message_of(error)}"

      # An error's message, or what stands for it when asking raises.
      def message_of(error) = asked("(its #message raised)") { error.message }

      # An error's backtrace as an Array, [] when it has none or asking raises.
      def backtrace_of(error) = asked([]) { Array(error.backtrace) }

      def line(level, message, fields = {})
        if @format == :json
          JSON.generate({ time: Time.now.utc.iso8601(3), level: level, pid: Process.pid, message: message }.merge(fields))
        else
          backtrace = fields[:backtrace]
          text = LEVELS.fetch(level) >= LEVELS[:warn] ? "lunar: #{message}" : message
          backtrace ? "#{text}\n#{backtrace.first(20).map { |l| "\t#{l}" }.join("\n")}" : text
        end
      end

      private

      # What the block asks of an app's error, or `fallback` when asking raises.
      def asked(fallback)
        yield
      rescue Exception # rubocop:disable Lint/RescueException -- an app's error may raise anything
        fallback
      end

      def write(level, message, fields)
        return if LEVELS.fetch(level) < @threshold

        io = LEVELS.fetch(level) >= LEVELS[:warn] ? $stderr : $stdout
        io.write("#{line(level, message, fields)}\n")
        io.flush
      rescue IOError, SystemCallError
        nil
      end
    end
  end
end
