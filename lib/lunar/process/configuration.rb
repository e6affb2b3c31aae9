# frozen_string_literal: true

require "etc"
require "lunar/process/options"

module Lunar
  # The settings of one Lunar, in Puma's layers: the command line (or the code embedding a
  # Server, or the options a user gave `rails server` or `rackup`) over the config file over
  # the Rack handler's own defaults over the environment over the table's defaults. Binds are the one setting not merged: binds given on the command line
  # replace the file's, as under Puma. Every value is checked by the option table when it
  # enters a layer (`Options::Invalid` names the option and what it accepts).
  class Configuration
    # Keys besides the table's options: the binds as resolved URIs (embedding code gives
    # them directly), sockets inherited from a cluster master or systemd, the app's error
    # handler (`lowlevel_error_handler`), and the hooks of a config file.
    INTERNAL = %i[binds listen_fds error_handler hooks cluster_worker].freeze
    # Values whose presence in a layer means "this layer names the binds".
    BIND_KEYS = %i[binds bind port address].freeze

    attr_reader :hooks, :plugins

    # `cli`: settings from the command line or embedding code (raw values, checked here);
    # `file`: a loaded config file (`DSL` or `ThinConfig`, already checked); `env`: where
    # the environment's defaults come from.
    def initialize(cli = {}, file: nil, defaults: {}, env: ENV)
      @cli = checked(cli)
      @file = file ? file.settings : {}
      @defaults = checked(defaults)
      @hooks = Hash.new { |h, k| h[k] = [] }
      [file&.hooks, cli[:hooks]].compact.each { |hooks| hooks.each { |name, blocks| @hooks[name].concat(blocks) } }
      @plugins = file ? file.plugins : []
      @env = env
      @values = {}
    end

    # The value of option (or internal key) `name`.
    def [](name)
      return @values[name] if @values.key?(name)

      @values[name] = resolve(name)
    end

    # A copy with `overrides` put over the command line's layer (a worker's sockets, say).
    def merge(overrides)
      copy = dup
      copy.instance_variable_set(:@cli, @cli.merge(checked(overrides)))
      copy.instance_variable_set(:@values, {})
      copy
    end

    # Checks every value now (environment defaults included): a bad one raises here, at
    # boot, rather than when it is first read.
    def check!
      Options::ALL.each { |o| self[o.name] }
      binds
      self
    end

    def mode
      self[:mode] || (defined?(::EventMachine) ? :evented : :threaded)
    end

    # Threads calling the app: Puma's maximum (Lunar runs a fixed pool).
    def threads
      self[:threads].last
    end

    # Whether the command line (or embedding code) named the binds.
    def explicit_binds?
      BIND_KEYS.any? { |key| @cli.key?(key) } || self[:ssl]
    end

    # The URIs to serve: the command line's binds if it named any, else the file's, else
    # `tcp://address:port`; with `--ssl`, the tcp ones become ssl:// ones.
    def binds
      @values[:resolved_binds] ||= begin
        layer = [@cli, @file, @defaults].find { |l| BIND_KEYS.any? { |key| l.key?(key) } } || {}
        list = layer[:binds] || bind_list(layer)
        self[:ssl] ? list.map { |bind| tls(bind) } : list
      end
    end

    # What the native server reads (ext/lunar/src/ruby/server_config.rs): every option the
    # table marks native, the binds and the sockets already bound.
    def native_options
      options = Options::ALL.select(&:native).to_h { |o| [o.name, native_value(self[o.name])] }
      options.merge(binds: binds, listen_fds: self[:listen_fds], asterisk_path_info: rack_at_least?("3.1"))
    end

    private

    def resolve(name)
      return @cli.fetch(name) { @file[name] } if INTERNAL.include?(name)

      option = Options[name]
      @cli.fetch(name) { @file.fetch(name) { @defaults.fetch(name) { env_default(option) || default(option) } } }
    end

    # A Thin user's `--timeout` is also the idle keep-alive limit, unless one was given:
    # Thin has one timeout for every quiet connection.
    def default(option)
      return self[:timeout] if option.name == :persistent_timeout && [@cli, @file, @defaults].any? { |l| l.key?(:timeout) }

      option.default
    end

    # The first environment variable the option reads that is set (and not empty).
    def env_default(option)
      variable = option.env.find { |v| !@env[v].to_s.strip.empty? }
      return unless variable

      value = @env[variable].strip
      value = Etc.nprocessors if option.name == :workers && value == "auto" # as Puma 7.2
      option.check(value, "#{variable}=#{@env[variable]}")
    end

    def checked(layer)
      layer.to_h do |name, value|
        next [name, value] if INTERNAL.include?(name) || value.nil?

        [name, Options[name].check(value, "#{name}:")]
      end
    end

    def bind_list(layer)
      list = Array(layer[:bind]).dup
      list << "tcp://#{format_host(layer.fetch(:address) { self[:address] })}:#{layer.fetch(:port) { self[:port] }}" if list.empty? || layer.key?(:port)
      list
    end

    # Thin's --ssl: a tcp:// bind served as TLS with --ssl-cert-file and --ssl-key-file.
    def tls(bind)
      return bind unless bind.start_with?("tcp://")

      cert = self[:ssl_cert_file]
      key = self[:ssl_key_file]
      raise Options::Invalid, "--ssl needs --ssl-cert-file PATH and --ssl-key-file PATH" unless cert && key

      query = { "cert" => cert, "key" => key }
      query.merge!("ca" => self[:ssl_ca_file], "verify_mode" => self[:ssl_verify]) if self[:ssl_ca_file]
      "#{bind.sub('tcp://', 'ssl://')}?#{query.map { |k, v| "#{k}=#{v}" }.join('&')}"
    end

    def native_value(value)
      value.is_a?(Symbol) ? value.to_s : value
    end

    def format_host(host)
      host = host.to_s
      host.include?(":") && !host.start_with?("[") ? "[#{host}]" : host
    end

    def rack_at_least?(version)
      defined?(::Rack.release) ? Gem::Version.new(::Rack.release) >= Gem::Version.new(version) : false
    end
  end
end
