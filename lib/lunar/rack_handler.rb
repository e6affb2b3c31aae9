# frozen_string_literal: true

require "lunar"
require "lunar/server"

module Lunar
  # The Rack handler behind `rackup -s lunar`, `rails server -u lunar` and Sinatra's
  # `set :server, :lunar`. Registered for Rack 2 (`Rack::Handler`) and rackup 2
  # (`Rackup::Handler`) by lib/rack/handler/lunar.rb and lib/rackup/handler/lunar.rb.
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
      "Threads=N" => "Ruby threads calling the app (default: 5)",
      "Timeout=SEC" => "Inactivity timeout (default: 30, 0 = never)",
      "async" => "Offer async.callback/async.close without EventMachine (Rails throw :async)",
    }.freeze

    class << self
      def run(app, **options)
        require "eventmachine" if rackup_command? && !defined?(::EventMachine)
        server = Server.new(app, server_options(options))
        @server = server.start
        %w[TERM QUIT].each { |signal| Signal.trap(signal) { server.stop } }
        warn "Lunar #{VERSION}: #{server.mode}, listening on #{server.addresses.join(', ')}" unless options[:Silent] || options[:quiet]
        yield server if block_given?
        server.wait
      ensure
        @server = nil
      end

      def valid_options
        OPTIONS
      end

      # rackup's `-O NAME` gives true, `-O NAME=VALUE` a String.
      def truthy(value)
        value.nil? ? nil : [true, "true", "1", "yes", "on"].include?(value)
      end

      # rackup's INT trap calls this: INT stops at once, as Thin.
      def shutdown
        @server&.halt
      end

      private

      def rackup_command?
        File.basename($PROGRAM_NAME) == "rackup"
      end

      def server_options(options)
        host = options[:Host] || "0.0.0.0"
        host = "0.0.0.0" if host.to_s.empty?
        {
          address: host,
          port: Integer(options[:Port] || 9292),
          threads: options[:Threads] && Integer(options[:Threads]),
          timeout: options[:Timeout] && Float(options[:Timeout]),
          async: truthy(options[:async]),
          quiet: options[:Silent] || options[:quiet],
        }
      end
    end
  end
end
