# frozen_string_literal: true

# A single-file Rails 6.1 app whose action answers through Thin's async protocol:
# it captures env['async.callback'], schedules the answer on the reactor, and throws :async.
#
#   lunar --evented -e production examples/rails_async/config.ru
#   curl localhost:9292/async
#
# As under Thin, the async answer bypasses Rails' middleware on its way out (no session
# cookie, no ETag): that is the protocol.
require "rails"
require "action_controller/railtie"

# A one-file Rails app whose action answers later through async.callback.
class AsyncRailsApp < Rails::Application
  config.root = __dir__
  config.eager_load = false
  config.secret_key_base = "lunar-example-not-a-secret-" * 3
  config.hosts.clear
  config.logger = Logger.new($stdout, level: :warn)
  routes.append do
    get "/" => "ticks#index"
    get "/async" => "ticks#async"
  end
end

# Captures env["async.callback"], answers from another thread, and throws :async.
class TicksController < ActionController::Base
  def index
    render plain: "Rails #{Rails.version} on #{request.env['SERVER_SOFTWARE']}; try /async\n"
  end

  def async
    callback = request.env["async.callback"]
    EM.add_timer(0.1) do
      callback.call([200, { "content-type" => "text/plain" }, ["answered later by Rails #{Rails.version}\n"]])
    end
    throw :async
  end
end

AsyncRailsApp.initialize!
run AsyncRailsApp
