# frozen_string_literal: true

module Lunar
  # Server options with their defaults, and the parsing of human sizes ("10m", "64k").
  # The CLI, the Rack handlers and `Lunar::Server.new` all end up here.
  class Configuration
    DEFAULTS = {
      binds: nil,                # nil → tcp://address:port (ssl:// with ssl: true)
      listen_fds: nil,           # { bind => descriptor }: inherited listening sockets (cluster master, systemd)
      address: "0.0.0.0",
      port: 9292,
      threads: 5,                # Ruby threads calling the app
      io_threads: nil,           # tokio threads; nil → one per core
      timeout: 30,               # seconds of inactivity before a connection is closed; 0 = never
      header_timeout: 30,        # seconds to receive a request head (slowloris)
      max_body: 64 * 1024 * 1024,
      max_header_size: 64 * 1024,
      queue_capacity: 1024,      # requests waiting for a Ruby thread; past it, 503
      max_conns: nil,            # connections held at once; nil → the open-file limit less 100
      max_persistent_conns: nil, # Thin's: HTTP/1 connections kept alive at once; nil → no limit, 0 → none
      spool_threshold: 128 * 1024,
      stream_buffer: 1024 * 1024, # bytes a streamed body may queue for a slow client
      connection_buffer: 4 * 1024 * 1024, # bytes all of one connection's responses may queue (HTTP/2 streams)
      max_ws_message: 1024 * 1024, # largest message a native WebSocket client may send
      write_timeout: 1.0,        # seconds a write on the reactor thread waits for a slow client
      mode: nil,                 # :evented, :threaded, or nil: evented if EventMachine is loaded
      async: nil,                # offer async.callback in threaded mode without EventMachine (also LUNAR_ASYNC=1)
      shutdown_timeout: 30,      # seconds in-flight requests get on TERM/INT
      access_log: nil,           # an IO, or nil
      ssl: false,                # Thin's --ssl: tcp:// binds become ssl:// with ssl_cert/ssl_key
      ssl_cert: nil,             # PEM certificate chain
      ssl_key: nil,              # PEM private key
      quiet: false,
      environment: nil,
    }.freeze

    SIZE_UNITS = { "" => 1, "k" => 1024, "m" => 1024**2, "g" => 1024**3 }.freeze

    # "64k" → 65536 (an Integer is already a size). Raises ArgumentError with a message a
    # user can act on.
    def self.parse_size(text)
      return text if text.is_a?(Integer)

      match = /\A(\d+)\s*([kmg]?)b?\z/i.match(text.to_s.strip)
      raise ArgumentError, "invalid size #{text.inspect} (use e.g. 512k, 10m, 1g)" unless match

      Integer(match[1], 10) * SIZE_UNITS.fetch(match[2].downcase)
    end

    attr_reader :options

    def initialize(options = {})
      unknown = options.keys - DEFAULTS.keys
      raise ArgumentError, "unknown Lunar option(s): #{unknown.join(', ')}" unless unknown.empty?

      @options = DEFAULTS.merge(options.compact)
      @options[:async] = true if @options[:async].nil? && ENV["LUNAR_ASYNC"].to_s.match?(/\A(1|true|yes|on)\z/i)
    end

    def [](key)
      @options.fetch(key)
    end

    def mode
      mode = @options[:mode]&.to_sym
      mode ||= defined?(::EventMachine) ? :evented : :threaded
      raise ArgumentError, "unknown mode #{mode.inspect} (use :evented or :threaded)" unless %i[evented threaded].include?(mode)

      mode
    end

    def binds
      list = @options[:binds] || ["tcp://#{format_host(@options[:address])}:#{@options[:port]}"]
      return list unless @options[:ssl]

      cert, key = @options.values_at(:ssl_cert, :ssl_key)
      raise ArgumentError, "--ssl needs --ssl-cert-file PATH and --ssl-key-file PATH" unless cert && key

      list.map { |bind| bind.start_with?("tcp://") ? "#{bind.sub('tcp://', 'ssl://')}?cert=#{cert}&key=#{key}" : bind }
    end

    # What the native server reads (see ext/lunar/src/ruby/server_config.rs).
    def native_options
      {
        binds: binds,
        listen_fds: @options[:listen_fds],
        io_threads: @options[:io_threads],
        queue_capacity: @options[:queue_capacity],
        max_conns: @options[:max_conns],
        max_persistent_conns: @options[:max_persistent_conns],
        max_body: @options[:max_body],
        max_header_size: @options[:max_header_size],
        timeout: @options[:timeout].to_f,
        header_timeout: @options[:header_timeout].to_f,
        spool_threshold: @options[:spool_threshold],
        stream_buffer: @options[:stream_buffer],
        connection_buffer: @options[:connection_buffer],
        write_timeout: @options[:write_timeout].to_f,
        max_ws_message: @options[:max_ws_message],
        asterisk_path_info: rack_at_least?("3.1"),
      }.compact
    end

    private

    def format_host(host)
      host = host.to_s
      host.include?(":") && !host.start_with?("[") ? "[#{host}]" : host
    end

    def rack_at_least?(version)
      defined?(::Rack.release) && Gem::Version.new(::Rack.release) >= Gem::Version.new(version)
    end
  end
end
