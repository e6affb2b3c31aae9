# frozen_string_literal: true

require "lunar"
require "lunar/process/cli"
require "lunar/process/launcher"

module Lunar
  # The Rack handler behind `rackup -s lunar`, `rails server -u lunar` and Sinatra's
  # `set :server, :lunar`. Registered for Rack 2 (`Rack::Handler`) and rackup 2
  # (`Rackup::Handler`) by lib/rack/handler/lunar.rb and lib/rackup/handler/lunar.rb.
  #
  # It enters through the same Launcher as the `lunar` command, so config/lunar.rb (or the
  # file LUNAR_CONFIG names) applies with everything it can do: workers, TLS, hooks, the
  # access log. What the user gave `rails server` or `rackup` (`-p`, `-b`, `-O Threads=8`)
  # wins over the file; what those commands pick by themselves (Rails' port 3000) gives way
  # to it, as under Puma.
  #
  # Under the `rackup` command it loads EventMachine, as Thin's handler does, so an app that
  # uses EM at request time works as under `rackup -s thin` (the app runs on the reactor).
  # `rails server -u lunar` and Sinatra's `set :server` keep the threaded pool unless the app
  # loaded EventMachine itself. `-O async` (or LUNAR_ASYNC=1) offers async.callback in the
  # threaded pool without EventMachine.
  module RackHandler
    OPTIONS = {
      "Host=HOST" => "Hostname to listen on (default: 0.0.0.0)",
      "Port=PORT" => "Port to listen on (default: 9292)",
      "Threads=N" => "Ruby threads calling the app, N or MIN:MAX (default: 5)",
      "Timeout=SEC" => "Inactivity timeout (default: 30, 0 = never)",
      "async" => "Offer async.callback/async.close without EventMachine (Rails throw :async)",
    }.freeze
    # The handler's option → Lunar's.
    NAMES = { Host: :address, Port: :port, Threads: :threads, Timeout: :timeout, async: :async, environment: :environment }.freeze

    class << self
      def run(app, **options)
        require "eventmachine" if rackup_command? && !defined?(::EventMachine)
        path = ENV["LUNAR_CONFIG"] || CLI.default_config_file
        given, defaults = settings(options)
        config = Configuration.new(given, file: path && CLI.config_file(path), defaults: defaults).check!
        @launcher = Launcher.new(config, app: app)
        yield @launcher if block_given?
        @launcher.run
      ensure
        @launcher = nil
      end

      def valid_options
        OPTIONS
      end

      # rackup's INT trap calls this: INT stops at once, as Thin.
      def shutdown
        @launcher&.halt
      end

      private

      def rackup_command?
        File.basename($PROGRAM_NAME) == "rackup"
      end

      # [what the user gave, what the command chose]: Rails tells them apart
      # (`user_supplied_options`); rackup's options are all the user's.
      def settings(options)
        supplied = options[:user_supplied_options]
        given = {}
        defaults = {}
        NAMES.each do |rack_name, name|
          value = options[rack_name]
          value = nil if rack_name == :Host && value.to_s.empty?
          value = [true, "true", "1", "yes", "on"].include?(value) if rack_name == :async && !value.nil?
          next if value.nil?

          (supplied.nil? || supplied.include?(rack_name) ? given : defaults)[name] = value
        end
        given[:quiet] = true if options[:Silent] || options[:quiet]
        [given, defaults]
      end
    end
  end
end
