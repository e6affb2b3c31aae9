# frozen_string_literal: true

require "optparse"
require "lunar/version"
require "lunar/process/options"
require "lunar/process/configuration"
require "lunar/process/dsl"
require "lunar/process/thin_config"
require "lunar/process/log"

module Lunar
  # `lunar [options] [config.ru]`: parses the command line into settings, its flags made
  # from the option table, reads the config file (`-C FILE`: Puma's Ruby DSL, or Thin's
  # YAML; by default `config/lunar.rb` when present), and hands both to the Launcher. Usage
  # errors (an unknown flag, a bad value, an unreadable file) print one line and exit 2.
  class CLI
    class UsageError < StandardError; end

    DEFAULT_CONFIG_FILE = "config/lunar.rb"
    PUMA_CONFIG_FILE = "config/puma.rb"

    def self.run(argv)
      require "lunar" # the native core, for the launcher and its errors
      require "lunar/process/launcher"
      new(argv).run
    rescue UsageError, OptionParser::ParseError, Options::Invalid, DSL::Error, ConfigError => e
      warn "lunar: #{e.message} (see lunar --help)"
      exit 2
    rescue BindError, RedisError => e # the machine's, not the command's: one line, exit 1
      warn "lunar: #{e.message}"
      exit 1
    end

    # The config file read when none is named: config/lunar.rb when present. A Rails app's
    # config/puma.rb is read only when named (`-C`, `LUNAR_CONFIG`): it may hold what Lunar
    # refuses, and a server that stops booting because a file appeared would surprise. But
    # it is not passed over in silence either: Puma would have read it.
    def self.default_config_file
      return DEFAULT_CONFIG_FILE if File.file?(DEFAULT_CONFIG_FILE)

      if File.file?(PUMA_CONFIG_FILE)
        Log.warn("#{PUMA_CONFIG_FILE} is not read unless named (-C #{PUMA_CONFIG_FILE}, LUNAR_CONFIG=#{PUMA_CONFIG_FILE}, " \
                 "or as #{DEFAULT_CONFIG_FILE}); booting without it")
      end
      nil
    end

    # Reads a config file: Thin's YAML by its extension, else Puma's Ruby DSL.
    def self.config_file(path)
      %w[.yml .yaml].include?(File.extname(path)) ? ThinConfig.load(path) : DSL.load(path)
    end

    attr_reader :settings, :config_file

    def initialize(argv)
      @argv = argv.dup
      @settings = {}
      @config_file = nil
      rest = parser.parse(argv.dup)
      raise UsageError, "one app at most (got #{rest.join(' ')})" if rest.size > 1

      @settings[:rackup] = rest.first if rest.first
    end

    def run
      # The command line's log format and level before any line, so that a line about the
      # config file (below) is in the format asked for; the Launcher sets them again with the
      # file's say.
      Log.configure(format: @settings.fetch(:log_format, :text), level: @settings.fetch(:log_level, :info))
      path = @config_file || self.class.default_config_file
      config = Configuration.new(@settings, file: path && self.class.config_file(path)).check!
      rackup = config[:rackup]
      Dir.chdir(config[:directory]) { readable!(rackup) } if config[:directory]
      readable!(rackup) unless config[:directory]
      exit Launcher.new(config, argv: [File.expand_path($PROGRAM_NAME), *@argv]).run
    end

    private

    def readable!(path)
      raise UsageError, "cannot read #{path}" unless File.file?(path) && File.readable?(path)
    end

    def parser
      OptionParser.new do |opts|
        opts.banner = "Usage: lunar [options] [config.ru]"
        opts.on("-C", "--config FILE", "Config file: Puma's Ruby DSL, or Thin's YAML (.yml); default #{DEFAULT_CONFIG_FILE} when present") do |path|
          @config_file = path
        end
        Options::SECTIONS.each do |section, title|
          opts.separator("")
          opts.separator("#{title}:")
          Options::ALL.select { |o| o.section == section && !o.flags.empty? }.each { |option| define(opts, option) }
        end
        opts.separator("")
        opts.on("-v", "--version", "Print the version") { puts("Lunar #{VERSION}") || exit }
        opts.on("-h", "--help", "This help") { puts(opts) || exit }
      end
    end

    # The option's flags. A flag without an argument sets a flag option, or (`--evented`)
    # names the value of a choice; an optional argument (`--access-log [FILE]`) may be left
    # out (for the access log: stdout).
    def define(opts, option)
      doc = option.doc.delete("`")
      doc += " (default: #{option.default_text})" unless option.default.nil? || option.default == [] || doc.include?("default")
      if option.flags.any? { |f| f.include?(" ") }
        opts.on(*option.flags, doc) { |v| set(option, v) }
      elsif option.type == Options::TYPES[:flag]
        opts.on(*option.flags, doc) { set(option, true) }
      else # each flag names a value: --evented, --threaded
        option.flags.each { |flag| opts.on(flag, "#{option.name}: #{flag.delete_prefix('--')}") { set(option, flag.delete_prefix("--")) } }
      end
    end

    def set(option, value)
      value = "-" if option.name == :access_log && value.nil?
      checked = option.check(value, option.flags.first.split.first)
      @settings[option.name] = option.repeat ? Array(@settings[option.name]) + Array(checked) : checked
    end
  end
end
