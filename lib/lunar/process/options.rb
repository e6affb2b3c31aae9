# frozen_string_literal: true

module Lunar
  # Every setting Lunar has, defined once: name, type (what it accepts), default, command-line
  # flags, the environment variables that give it a default, and one line of documentation.
  # From this table come the `lunar` command's flags (CLI), the config file's methods (DSL),
  # what the Rack handler reads, what the native core is handed (`native: true`), and the
  # README's option table (spec/unit/options_spec.rb keeps the README equal to it).
  #
  # A value is checked when it is set (a flag, a config-file line, an environment variable):
  # a bad one raises Invalid naming the option and what it accepts, and never reaches Rust.
  module Options
    # A value an option cannot take: the message names the option and what it accepts.
    class Invalid < ArgumentError; end

    # `accepts` is the phrase for error messages and the README; `convert` turns a flag's
    # text or a config file's value into the setting, raising ArgumentError when it can't.
    Type = Struct.new(:accepts, :convert)

    Option = Struct.new(:name, :type, :default, :flags, :env, :doc, :section, :native, :repeat, :choices, keyword_init: true) do
      # Converts and checks `value`; `source` names where it came from, for the message.
      def check(value, source = "--#{name.to_s.tr('_', '-')}")
        return value.map { |v| check(v, source) } if repeat && value.is_a?(Array)

        type.convert.call(value, self)
      rescue ArgumentError, TypeError, RangeError
        raise Invalid, "#{source}: #{value.inspect} is not #{type.accepts}"
      end

      # The default, as the README shows it.
      def default_text
        return "none" if default.nil? || default == []
        return default.join(":") if default.is_a?(Array)

        default.to_s
      end
    end

    SIZE_UNITS = { "" => 1, "k" => 1024, "m" => 1024**2, "g" => 1024**3 }.freeze

    module_function

    # "64k" → 65536 (an Integer is already a size).
    def parse_size(text)
      return Integer(text) if text.is_a?(Integer)

      match = /\A(\d+)\s*([kmg]?)b?\z/i.match(text.to_s.strip) or raise ArgumentError, "not a size"
      Integer(match[1], 10) * SIZE_UNITS.fetch(match[2].downcase)
    end

    def whole(value, range)
      number = value.is_a?(Integer) ? value : Integer(value.to_s, 10)
      range.cover?(number) ? number : raise(ArgumentError, "out of range")
    end

    def seconds(value, positive:)
      number = Float(value.is_a?(Numeric) ? value : value.to_s)
      raise ArgumentError, "not finite" unless number.finite? && number <= 1e9 # about 31 years: more is "never", say 0
      raise ArgumentError, "out of range" if positive ? number <= 0 : number.negative?

      number
    end

    def flag(value)
      case value
      when true, "true", "yes", "on", "1" then true
      when false, nil, "false", "no", "off", "0" then false
      else raise ArgumentError, "not a flag"
      end
    end

    # "N" → [N, N]; "MIN:MAX" → [MIN, MAX]; an Array [MIN, MAX] as it is.
    def threads(value)
      min, max = value.is_a?(Array) ? value : value.to_s.split(":", 2)
      max ||= min
      pair = [whole(min, 0..), whole(max, 1..)]
      pair.first <= pair.last ? pair : raise(ArgumentError, "min above max")
    end

    def choice(value, option)
      text = value.to_s
      option.choices.include?(text) ? text.to_sym : raise(ArgumentError, "not one of them")
    end

    TYPES = {
      port: Type.new("a port number (0 to 65535)", ->(v, _) { whole(v, 0..65_535) }),
      count: Type.new("a whole number of at least 1", ->(v, _) { whole(v, 1..) }),
      count0: Type.new("a whole number (0 or more)", ->(v, _) { whole(v, 0..) }),
      seconds: Type.new("a number of seconds (0 for never)", ->(v, _) { seconds(v, positive: false) }),
      positive_seconds: Type.new("a number of seconds above 0", ->(v, _) { seconds(v, positive: true) }),
      size: Type.new("a size such as 512k, 10m or 1g", ->(v, _) { parse_size(v).tap { |n| raise ArgumentError if n < 1 } }),
      text: Type.new("a text", ->(v, _) { v.is_a?(String) || v.is_a?(Symbol) || v.is_a?(Numeric) ? v.to_s : raise(ArgumentError) }),
      flag: Type.new("true or false", ->(v, _) { flag(v) }),
      threads: Type.new("a thread count N or MIN:MAX (MIN <= MAX, MAX >= 1)", ->(v, _) { threads(v) }),
      choice: Type.new("one of its values", ->(v, option) { choice(v, option) }),
    }.freeze

    def option(name, type, default = nil, doc:, section:, flags: [], env: [], native: false, repeat: false, values: nil)
      type = TYPES.fetch(type)
      type = Type.new("one of #{values.join(', ')}", type.convert) if values
      Option.new(name: name, type: type, default: default, flags: flags, env: env, doc: doc, section: section,
                 native: native, repeat: repeat, choices: values)
    end

    SECTIONS = {
      listen: "Listening",
      process: "Processes and threads",
      limits: "Limits and timeouts",
      logging: "Logging",
      control: "Control",
    }.freeze

    ALL = [
      # Listening
      option(:port, :port, 9292, flags: ["-p", "--port PORT"], env: %w[PORT], section: :listen,
                                 doc: "TCP port (a `PORT` variable sets the default, as under `rails server`)"),
      option(:address, :text, "0.0.0.0", flags: ["-a", "--address HOST"], section: :listen, doc: "address to bind"),
      option(:bind, :text, [], flags: ["-b", "--bind URI"], repeat: true, section: :listen,
                               doc: "`tcp://HOST:PORT`, `ssl://HOST:PORT?cert=PATH&key=PATH` or `unix:///PATH`; repeatable; replaces `--port`/`--address`"),
      option(:ssl, :flag, false, flags: ["--ssl"], section: :listen, doc: "Thin's TLS switch: the tcp binds become TLS, with the certificate and key below"),
      option(:ssl_cert_file, :text, flags: ["--ssl-cert-file PATH"], section: :listen, doc: "PEM certificate chain for `--ssl`"),
      option(:ssl_key_file, :text, flags: ["--ssl-key-file PATH"], section: :listen, doc: "PEM private key for `--ssl`"),
      option(:ssl_ca_file, :text, flags: ["--ssl-ca-file PATH"], section: :listen, doc: "client certificates: the PEM CA certificates to verify them with"),
      option(:ssl_verify, :choice, :none, values: %w[none peer force_peer], flags: ["--ssl-verify MODE"], section: :listen,
                                          doc: "client certificates: `none`, `peer` (verified when sent) or `force_peer` (required)"),
      # Processes and threads
      option(:workers, :count0, 0, flags: ["-w", "--workers N"], env: %w[WEB_CONCURRENCY], section: :process,
                                   doc: "cluster mode: N worker processes (`WEB_CONCURRENCY` sets the default); 0 = one process"),
      option(:preload_app, :flag, false, flags: ["--preload"], section: :process, doc: "cluster mode: load the app in the master before forking"),
      option(:mode, :choice, values: %w[evented threaded], flags: ["--evented", "--threaded"], section: :process,
                             doc: "run the app on the EventMachine reactor (Thin's model) or on a pool of threads (Puma's); " \
                                  "default: evented when EventMachine is loaded"),
      option(:eventmachine, :flag, false, flags: ["--eventmachine", "--em"], section: :process,
                                          doc: "load EventMachine before the app and run its reactor (with `--threaded`: `thin start --threaded`)"),
      option(:async, :flag, false, flags: ["--async"], env: %w[LUNAR_ASYNC], section: :process,
                                   doc: "offer `async.callback` in threaded mode without EventMachine (`LUNAR_ASYNC=1` under `rails server`)"),
      option(:threads, :threads, [0, 5], flags: ["-t", "--threads N|MIN:MAX"], section: :process,
                                         env: %w[PUMA_MAX_THREADS MAX_THREADS RAILS_MAX_THREADS],
                                         doc: "Ruby threads calling the app (threaded mode): Puma's MIN:MAX, Lunar runs MAX; " \
                                              "`PUMA_MAX_THREADS`, `MAX_THREADS` or `RAILS_MAX_THREADS` set the default"),
      option(:io_threads, :count0, flags: ["--io-threads N"], native: true, section: :process,
                                   doc: "tokio threads (accept, TLS, HTTP, writes); default: one per core. 0: none, the " \
                                        "app's threads do the I/O between requests (Thin's model; threaded mode only)"),
      option(:environment, :text, "development", flags: ["-e", "--environment ENV"], env: %w[APP_ENV RACK_ENV RAILS_ENV], section: :process,
                                                 doc: "sets `RACK_ENV`; `APP_ENV`, `RACK_ENV` or `RAILS_ENV` set the default"),
      option(:rackup, :text, "config.ru", section: :process, doc: "the Rack app (the command line's last argument)"),
      option(:directory, :text, flags: ["--dir DIR"], section: :process, doc: "change to this directory before loading the app (and before a restart)"),
      option(:require, :text, [], flags: ["-r", "--require LIB"], repeat: true, section: :process, doc: "require LIB before loading the app; repeatable"),
      option(:include, :text, [], flags: ["-I", "--include DIR"], repeat: true, section: :process, doc: "add DIR to `$LOAD_PATH`; repeatable"),
      option(:pidfile, :text, flags: ["--pidfile FILE", "--pid FILE"], section: :process, doc: "write the process id to FILE"),
      option(:tag, :text, flags: ["--tag NAME"], section: :process, doc: "shown in the process title"),
      option(:worker_boot_timeout, :positive_seconds, 60, flags: ["--worker-boot-timeout SEC"], section: :process,
                                                          doc: "a worker not booted within this counts as failed"),
      option(:worker_timeout, :positive_seconds, 60, flags: ["--worker-timeout SEC"], section: :process,
                                                     doc: "a worker that has not checked in for this long is replaced"),
      option(:worker_check_interval, :positive_seconds, 5, flags: ["--worker-check-interval SEC"], section: :process,
                                                           doc: "how often each worker reports its status to the master"),
      option(:wait_for_less_busy_worker, :seconds, 0.005, flags: ["--wait-for-less-busy-worker SEC"], section: :process, native: true,
                                                          doc: "cluster mode, threaded: a worker whose threads are all busy takes no new " \
                                                               "connection until one is free (a sibling takes it); 0 turns it off"),
      # Limits and timeouts
      option(:timeout, :seconds, 30, flags: ["--timeout SEC"], native: true, section: :limits,
                                     doc: "Thin's inactivity timeout: a connection with a request under way and no traffic either way " \
                                          "for this long is closed; 0 = never"),
      option(:persistent_timeout, :seconds, 65, flags: ["--persistent-timeout SEC"], env: %w[PUMA_PERSISTENT_TIMEOUT], native: true,
                                                section: :limits,
                                                doc: "an idle keep-alive connection (no request under way) is closed after this; " \
                                                     "default: `--timeout` when that is given (Thin's meaning), else 65 (Puma 7's); 0 = never"),
      option(:first_data_timeout, :positive_seconds, 30, flags: ["--first-data-timeout SEC"], native: true, section: :limits,
                                                         doc: "a new connection must send its first request head within this"),
      option(:header_timeout, :positive_seconds, 30, flags: ["--header-timeout SEC"], native: true, section: :limits,
                                                     doc: "a request head must arrive within this once begun (slowloris); on HTTP/2 also between requests"),
      option(:write_timeout, :seconds, 1.0, flags: ["--write-timeout SEC"], native: true, section: :limits,
                                            doc: "a client that reads nothing of a streamed body, or a WebSocket control frame, for this long is cut off"),
      option(:shutdown_timeout, :seconds, 30, flags: ["--shutdown-timeout SEC"], section: :limits, doc: "on TERM/QUIT, in-flight requests get this long"),
      option(:max_body, :size, 64 * (1024**2), flags: ["--max-body SIZE"], native: true, section: :limits, doc: "larger request bodies get 413"),
      option(:max_header_size, :size, 64 * 1024, flags: ["--max-header-size SIZE"], native: true, section: :limits, doc: "larger request heads get 431"),
      option(:spool_threshold, :size, 128 * 1024, flags: ["--spool-threshold SIZE"], native: true, section: :limits,
                                                  doc: "request bodies larger than this wait in an unlinked temp file, not in memory"),
      option(:max_conns, :count, flags: ["--max-conns N"], native: true, section: :limits,
                                 doc: "connections held at once (per worker); past it a new one gets 503; default: the open-file limit less 100"),
      option(:max_persistent_conns, :count0, flags: ["--max-persistent-conns N"], native: true, section: :limits,
                                             doc: "HTTP/1 connections kept alive at once (Thin's flag); 0 closes each after its response; default: no limit"),
      option(:queue, :count, 1024, flags: ["--queue N"], native: true, section: :limits, doc: "requests waiting for a Ruby thread; past it, 503 at once"),
      option(:stream_buffer, :size, 1024**2, flags: ["--stream-buffer SIZE"], native: true, section: :limits,
                                             doc: "bytes a streamed response may queue for a slow client"),
      option(:connection_buffer, :size, 4 * (1024**2), flags: ["--connection-buffer SIZE"], native: true, section: :limits,
                                                       doc: "bytes all of one connection's responses may queue together (HTTP/2 streams)"),
      option(:max_ws_message, :size, 1024**2, flags: ["--max-ws-message SIZE"], native: true, section: :limits,
                                              doc: "largest message a `Topic#websocket` client may send"),
      # Logging
      option(:access_log, :text, flags: ["--access-log [FILE]"], section: :logging,
                                 doc: "one line per request (Common Log Format, bytes, seconds) to FILE or stdout"),
      option(:log_format, :choice, :text, values: %w[text json], flags: ["--log-format FORMAT"], section: :logging,
                                          doc: "Lunar's own log lines (Ruby's and Rust's): `text` or `json`, one object a line"),
      option(:log_level, :choice, :info, values: %w[debug info warn error], flags: ["--log-level LEVEL"], section: :logging,
                                         doc: "the least severe of Lunar's own lines written"),
      option(:redirect_stdout, :text, flags: ["--redirect-stdout FILE"], section: :logging, doc: "stdout to FILE (reopened on HUP)"),
      option(:redirect_stderr, :text, flags: ["--redirect-stderr FILE"], section: :logging, doc: "stderr to FILE (reopened on HUP)"),
      option(:redirect_append, :flag, false, flags: ["--redirect-append"], section: :logging, doc: "append to the redirect files instead of truncating them"),
      option(:quiet, :flag, false, flags: ["-q", "--quiet"], section: :logging, doc: "no boot line"),
      # Control
      option(:control_url, :text, flags: ["--control-url URL"], section: :control,
                                  doc: "serve Puma's control app (`/stats`, `/metrics`, `/phased-restart` …) on `tcp://` or `unix://` URL"),
      option(:control_token, :text, flags: ["--control-token TOKEN"], section: :control,
                                    doc: "the control app's `?token=`; required unless `none`"),
    ].freeze

    BY_NAME = ALL.to_h { |o| [o.name, o] }.freeze

    def [](name)
      BY_NAME.fetch(name) { raise Invalid, "unknown Lunar option `#{name}'" }
    end

    # The README's option table, section by section.
    def markdown
      SECTIONS.map do |section, title|
        rows = ALL.select { |o| o.section == section }.map do |o|
          flags = o.flags.empty? ? "" : o.flags.map { |f| "`#{f}`" }.join(", ")
          "| #{flags} | `#{o.name}` | #{o.default_text} | #{o.doc} |"
        end
        "#### #{title}\n\n| flag | config file | default | meaning |\n| --- | --- | --- | --- |\n#{rows.join("\n")}\n"
      end.join("\n")
    end
  end
end
