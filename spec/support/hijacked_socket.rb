# frozen_string_literal: true

# websocket-driver needs an object with env, url and write: the hijacked IO behind it.
class HijackedSocket
  attr_reader :env, :url

  def initialize(env, io)
    @env = env
    @io = io
    @url = "ws://#{env['HTTP_HOST']}#{env['REQUEST_URI']}"
  end

  def write(data)
    @io.write(data)
  end
end
