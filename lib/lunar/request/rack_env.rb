# frozen_string_literal: true

require "stringio"
require "lunar/async/deferrable"
require "lunar/request/empty_input"
require "lunar/request/hijack"

module Lunar
  # The Ruby half of the Rack env. The native side (ext/lunar/src/ruby/env.rs) copies `base`
  # and adds the per-request CGI keys, HTTP_* headers, rack.response_finished and
  # rack.after_reply; this adds rack.input, async.close and, where the request can be
  # hijacked, rack.hijack.
  class RackEnv
    RACK_INPUT = "rack.input"
    ASYNC_CLOSE = "async.close"
    RACK_HIJACK_P = "rack.hijack?"
    RACK_HIJACK = "rack.hijack"

    # `async`: offer async.close (AppRunner adds async.callback) — EM::DefaultDeferrable when
    # EventMachine is loaded, as under Thin, else Lunar::Deferrable.
    def initialize(multithread:, async: false, errors: $stderr)
      @close_class = defined?(::EM::DefaultDeferrable) ? ::EM::DefaultDeferrable : Deferrable if async
      @base = {
        "SCRIPT_NAME" => "",
        "SERVER_SOFTWARE" => "Lunar #{VERSION}",
        "GATEWAY_INTERFACE" => "CGI/1.2",
        "rack.version" => [1, 3],
        "rack.url_scheme" => "http",
        "rack.errors" => errors,
        "rack.multithread" => multithread,
        "rack.multiprocess" => false,
        "rack.run_once" => false,
        "rack.hijack?" => true, # every HTTP/1 request; HTTP/2 ones say false
      }.freeze
    end

    # A full env for one native request (the native side adds the CGI keys, HTTP_* and
    # rack.response_finished).
    def for(request)
      env = request.env(@base)
      env[RACK_INPUT] = input(request.take_body)
      env[ASYNC_CLOSE] = @close_class.new if @close_class
      if request.hijackable? # any HTTP/1 request: the connection can be taken
        env[RACK_HIJACK] = Hijack.new(request, env)
      else
        env[RACK_HIJACK_P] = false
      end
      env
    end

    # Whether the app took the connection (a full hijack) or asks Lunar to hand it over after
    # the head (a partial one): then the response is no plain one.
    def self.hijacking?(env, headers)
      hijack = env[RACK_HIJACK]
      return false unless hijack.is_a?(Hijack)

      hijack.hijacked? || !partial_hijack(env, headers).nil?
    end

    # The callable of a partial hijack (a `rack.hijack` response header), where the request
    # can be hijacked. Any other value is a rack.* header, never written.
    def self.partial_hijack(env, headers)
      callable = env[RACK_HIJACK_P] && headers.is_a?(Hash) && headers[RACK_HIJACK]
      callable if callable.respond_to?(:call)
    end

    private

    # Binary and rewindable: a StringIO for bodies in memory, the unlinked temp file the
    # native side spooled a large body into, or the shared EmptyInput.
    def input(body)
      case body
      when String then StringIO.new(body)
      when Integer then File.for_fd(body, "rb", autoclose: true)
      else EmptyInput
      end
    end
  end
end
