# frozen_string_literal: true

module Lunar
  # What app code may raise that Lunar answers (a 500, or the connection cut, logged) and
  # survives: anything. Thin rescues Exception around app.call and answers 500; Puma's
  # threads survive it too. Not only StandardError: rack-timeout's RequestTimeoutException
  # is an Exception on purpose, so that apps do not rescue it, and an app may call `exit`;
  # neither may end a worker thread or the reactor (a server whose threads all died answers
  # nothing). Thread#kill is not an exception and still ends a thread.
  APP_ERRORS = [Exception].freeze
end
