# frozen_string_literal: true

require "lunar"
require "lunar/server"

module Lunar
  # The Rack handler behind `rackup -s lunar`, `rails server -u lunar` and Sinatra's
  # `set :server, :lunar`. Registered for Rack 2 (`Rack::Handler`) and rackup 2
  # (`Rackup::Handler`) by lib/rack/handler/lunar.rb and lib/rackup/handler/lunar.rb.
  module RackHandler
    OPTIONS = {
      "Host=HOST" => "Hostname to listen on (default: 0.0.0.0)",
      "Port=PORT" => "Port to listen on (default: 9292)",
      "Threads=N" => "Ruby threads calling the app (default: 5)",
      "Timeout=SEC" => "Inactivity timeout (default: 30, 0 = never)",
    }.freeze

    class << self
      def run(app, **options)
        server = Server.new(app, server_options(options))
        @server = server.start
        Signal.trap("TERM") { server.stop }
        unless options[:Silent] || options[:quiet]
          warn "Lunar #{VERSION}: #{server.mode}, listening on #{server.addresses.join(", ")}"
        end
        yield server if block_given?
        server.wait
      ensure
        @server = nil
      end

      def valid_options
        OPTIONS
      end

      # rackup's INT trap calls this.
      def shutdown
        @server&.stop
      end

      private

      def server_options(options)
        host = options[:Host] || "0.0.0.0"
        host = "0.0.0.0" if host.to_s.empty?
        {
          address: host,
          port: Integer(options[:Port] || 9292),
          threads: options[:Threads] && Integer(options[:Threads]),
          timeout: options[:Timeout] && Float(options[:Timeout]),
          quiet: options[:Silent] || options[:quiet],
        }
      end
    end
  end
end
