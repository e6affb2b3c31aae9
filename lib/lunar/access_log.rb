# frozen_string_literal: true

module Lunar
  # One Common Log Format line per response, written to an IO.
  class AccessLog
    def initialize(io)
      @io = io
      @io.sync = true if @io.respond_to?(:sync=)
    end

    def log(env, status)
      time = Time.now.strftime("%d/%b/%Y:%H:%M:%S %z")
      request_line = "#{env['REQUEST_METHOD']} #{env['REQUEST_URI']} #{env['SERVER_PROTOCOL']}"
      @io.write(%(#{env['REMOTE_ADDR'] || '-'} - - [#{time}] "#{request_line}" #{status.to_i} -\n))
    rescue StandardError
      nil
    end
  end
end
